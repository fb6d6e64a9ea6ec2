// The official OpenAI clients against a running Duet proxy, used as their users use them.
// DUET_BASE_URL (http://host:port/v1) and DUET_MODEL say where; exits non-zero at the first
// difference. Run by io.duet.proxy.it.HttpEdgeIT.
import assert from "node:assert/strict";
import OpenAI from "openai";
import { OpenAI as LangChainOpenAI, ChatOpenAI } from "@langchain/openai";

const baseURL = process.env.DUET_BASE_URL;
const model = process.env.DUET_MODEL;
assert.ok(baseURL && model, "set DUET_BASE_URL and DUET_MODEL");
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 30_000 });
const greedy = { model, temperature: 0, max_tokens: 8 };
const prompts = Array.from({ length: 25 }, (_, i) => `Robot number ${i} dreams of`);

async function check(name, run) {
  const start = Date.now();
  await run();
  console.log(`ok ${name} (${Date.now() - start} ms)`);
}

/** The greedy completion of one prompt alone: what every batched form must reproduce. */
async function alone(prompt) {
  const completion = await client.completions.create({ ...greedy, prompt });
  return completion.choices[0].text;
}

await check("openai completions: one prompt", async () => {
  const completion = await client.completions.create({ ...greedy, prompt: "Once upon a time" });
  assert.equal(completion.object, "text_completion");
  assert.equal(completion.choices.length, 1);
  assert.equal(typeof completion.choices[0].text, "string");
  assert.equal(typeof completion.system_fingerprint, "string");
  assert.ok(completion.usage.prompt_tokens > 0 && completion.usage.completion_tokens > 0);
});

await check("openai completions: batched prompts, one choice each in order", async () => {
  const batch = prompts.slice(0, 3);
  const completion = await client.completions.create({ ...greedy, prompt: batch });
  assert.deepEqual(completion.choices.map((c) => c.index), [0, 1, 2]);
  for (let i = 0; i < batch.length; i++) {
    assert.equal(completion.choices[i].text, await alone(batch[i]), `choice ${i}`);
  }
});

await check("openai completions: token-id prompts", async () => {
  const one = await client.completions.create({ ...greedy, prompt: [1, 400, 300, 200] });
  assert.equal(one.choices.length, 1);
  assert.equal(one.usage.prompt_tokens, 4);
  const two = await client.completions.create({ ...greedy, prompt: [[1, 400, 300, 200], [1, 50]] });
  assert.deepEqual(two.choices.map((c) => c.index), [0, 1]);
  assert.equal(two.choices[0].text, one.choices[0].text);
  assert.equal(two.usage.prompt_tokens, 6);
});

await check("openai completions: an out-of-vocabulary token id is a 400 naming it", async () => {
  await assert.rejects(client.completions.create({ ...greedy, prompt: [1, 99999] }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError, String(e));
    assert.match(e.message, /99999/);
    return true;
  });
});

await check("openai completions: max_tokens past the context is a 400", async () => {
  await assert.rejects(client.completions.create({ ...greedy, prompt: "hi", max_tokens: 5000 }),
    (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, String(e));
      assert.equal(e.code, "context_length_exceeded");
      return true;
    });
});

await check("openai completions: batched prompts streamed", async () => {
  const batch = prompts.slice(3, 5);
  const texts = ["", ""];
  const finished = [null, null];
  const stream = await client.completions.create({ ...greedy, prompt: batch, stream: true });
  for await (const chunk of stream) {
    for (const choice of chunk.choices) {
      texts[choice.index] += choice.text;
      finished[choice.index] ??= choice.finish_reason;
    }
  }
  assert.ok(finished.every((f) => f !== null), "each choice finishes");
  assert.deepEqual(texts, [await alone(batch[0]), await alone(batch[1])]);
});

await check("openai chat completions, whole and streamed", async () => {
  const messages = [{ role: "user", content: "Say hello" }];
  const whole = await client.chat.completions.create({ ...greedy, messages });
  assert.equal(whole.choices[0].message.role, "assistant");
  assert.equal(whole.choices[0].message.refusal, null);
  assert.deepEqual(whole.choices[0].message.annotations, []);
  let streamed = "";
  const stream = await client.chat.completions.create({ ...greedy, messages, stream: true,
    stream_options: { include_usage: true } });
  let usage = null;
  for await (const chunk of stream) {
    streamed += chunk.choices[0]?.delta?.content ?? "";
    usage = chunk.usage ?? usage;
  }
  assert.equal(streamed, whole.choices[0].message.content);
  assert.deepEqual(usage, whole.usage);
});

await check("langchain OpenAI.batch and generate: 25 prompts, 20 a request", async () => {
  const llm = new LangChainOpenAI({ model, apiKey: "unused", configuration: { baseURL },
    temperature: 0, maxTokens: 8, maxRetries: 0 });
  const answers = await llm.batch(prompts);
  assert.equal(answers.length, prompts.length);
  for (const i of [0, 7, 24]) {
    assert.equal(answers[i], await alone(prompts[i]), `prompt ${i}`);
  }
  const generated = await llm.generate(prompts.slice(0, 4));
  assert.deepEqual(generated.generations.map((g) => g[0].text), answers.slice(0, 4));
});

await check("langchain ChatOpenAI.invoke", async () => {
  const chat = new ChatOpenAI({ model, apiKey: "unused", configuration: { baseURL },
    temperature: 0, maxTokens: 8, maxRetries: 0 });
  const message = await chat.invoke("Say hello");
  const whole = await client.chat.completions.create({ ...greedy,
    messages: [{ role: "user", content: "Say hello" }] });
  assert.equal(message.content, whole.choices[0].message.content);
});
