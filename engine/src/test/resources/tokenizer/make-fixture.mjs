// Writes deepseek-v3-fixture.json: a corpus of varied strings and the token ids Hugging Face's
// `tokenizers` library (its npm package) gives for each with DeepSeek-V3's tokenizer.json, plus
// the text it decodes them back to. HfTokenizerFixtureTest compares every string with it.
//
//   mkdir -p /tmp/tokfix && cd /tmp/tokfix && npm install tokenizers@0.23.2
//   NODE_PATH=/tmp/tokfix/node_modules node make-fixture.mjs \
//       ../../../../../shared/models/deepseek-v3-tokenizer/tokenizer.json deepseek-v3-fixture.json
//
// The ids are the library's own (encode without added special tokens: DeepSeek-V3's
// post-processor is ByteLevel, which adds none); never edit them by hand.
import { createRequire } from "module";
import { readFileSync, writeFileSync } from "fs";

const require = createRequire(import.meta.url);
const { Tokenizer } = require("tokenizers");
const [tokenizerJson, out] = process.argv.slice(2);

const fixed = [
  "", " ", "  ", "\n", "\t", "a", "Hello", "Hello world", " Hello world", "Hello world ",
  "Hello, world! How are you today?", "The quick brown fox jumps over the lazy dog.",
  "I'm sure you've heard it: they'll say we'd won't can't.", "HELLO WORLD", "hello\nworld",
  "line one\r\nline two\r\n", "trailing spaces   ", "   leading spaces", "a  b   c    d",
  "tabs\tand\t\tmore\ttabs", "mixed \t \n \r\n whitespace \n\n\n", "\n\n\n\n", "\t\t\t",
  "                                ", "word\n    indented\n        twice", "\u00a0nbsp\u00a0here",
  "ideographic\u3000space", "em\u2003space and thin\u2009space", "zero\u200bwidth",
  "0", "7", "12", "123", "1234", "12345", "123456", "1234567", "3.14159", "2024-06-01",
  "1,000,000", "+1 (555) 010-9999", "v1.2.3", "0x1F600", "1e-9", "-42", "10%", "$19.99",
  "١٢٣ Arabic-Indic digits", "full-width １２３４ digits", "Roman Ⅻ numeral", "½ ¾ fractions",
  "你好", "你好，世界！", "我爱北京天安门。", "深度求索公司发布了DeepSeek-V3模型。",
  "机器学习和深度学习的区别是什么？", "今天天气很好，我们去公园散步吧。", "中文English混合text",
  "数字123和汉字", "繁體中文測試", "こんにちは世界", "カタカナとひらがな", "東京は日本の首都です。",
  "안녕하세요 세계", "Привет, мир!", "Γειά σου Κόσμε", "مرحبا بالعالم", "שלום עולם",
  "नमस्ते दुनिया", "สวัสดีชาวโลก", "Xin chào thế giới", "Tiếng Việt có dấu",
  "Ünïcödé àccénts: café, naïve, façade, jalapeño", "e\u0301 combining acute", "Å vs A\u030a",
  "ﬁ ligature", "Straße", "İstanbul ı", "😀", "😀😃😄", "👍🏽 thumbs", "👨‍👩‍👧‍👦 family",
  "🇫🇷🇯🇵 flags", "❤️ heart", "emoji 🎉 in 🚀 text ✨", "🤖🧠💡", "☃ ☂ ★ ♠", "→ ← ↑ ↓ ⇒",
  "∑ ∫ √ ∞ ≠ ≤ ≥", "E = mc²", "α + β = γ", "x_1^2 + y_{i,j}", "\\frac{a}{b}",
  "def foo(x):\n    return x * 2\n", "for (int i = 0; i < n; i++) {\n  sum += a[i];\n}",
  "public static void main(String[] args) {}", "const f = (a, b) => a + b;",
  "if x == 1 and not y:\n\tpass", "#include <stdio.h>\nint main() { printf(\"hi\\n\"); }",
  "SELECT * FROM users WHERE id = 42;", "{\"key\": \"value\", \"n\": [1, 2, 3]}",
  "<div class=\"a\">text</div>", "<html><body><p>Hi</p></body></html>", "a->b->c", "x != y",
  "a && b || !c", "i++; --j;", "foo.bar().baz[0]", "import numpy as np", "@decorator\ndef f(): ...",
  "https://www.example.com/path?query=1&x=y#frag", "user@example.com", "C:\\Users\\name\\file.txt",
  "/usr/local/bin/python3", "$HOME/.bashrc", "git commit -m \"fix: bug\"", "rm -rf ./build",
  "#hashtag @mention", "...", "!!!", "???", "?!", "—", "– dash —", "«quotes»", "“smart quotes”",
  "'single'", "\"double\"", "(parens)", "[brackets]", "{braces}", "<angles>", "a/b\\c|d",
  "~`!@#$%^&*()_+-={}[]|\\:;\"'<>,.?/", ".hidden", "-flag", "_private", "__init__",
  "snake_case_name", "camelCaseName", "PascalCaseName", "kebab-case-name", "SCREAMING_CASE",
  "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜begin▁of▁sentence｜>Hello",
  "Hello<｜end▁of▁sentence｜>", "<｜User｜>Hi<｜Assistant｜>", "<｜User｜>", "<｜Assistant｜>",
  "<｜begin▁of▁sentence｜>You are helpful.<｜User｜>What is 2+2?<｜Assistant｜>",
  "<｜User｜>a<｜Assistant｜>b<｜end▁of▁sentence｜><｜User｜>c<｜Assistant｜>",
  "text <｜User｜> spaced <｜Assistant｜> tokens", "<｜User｜><｜User｜>", "<｜User", "｜>",
  "<｜begin▁of▁sentence｜><｜begin▁of▁sentence｜>", "<｜fim▁begin｜>code<｜fim▁hole｜>x<｜fim▁end｜>",
  "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather",
  "<｜▁pad▁｜>", "<|endoftext|>", "<s>[INST] hi [/INST]</s>", "<think>\nreasoning\n</think>",
  "The year 1999 and 2000 and 20000000.", "Call 911 or 112.", "Pi is 3.14159265358979.",
  "Temperature: -3.5°C", "Price: €1.234,56", "£100 ¥200 ₹300", "100km/h", "3x4=12",
  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "abababababababababab", "the the the the the",
  "Mississippi", "antidisestablishmentarianism", "supercalifragilisticexpialidocious",
  "pneumonoultramicroscopicsilicovolcanoconiosis", "Llanfairpwllgwyngyll", "hello\u0000world",
  "bell\u0007char", "\u001b[31mred\u001b[0m", "tab\u000bvertical", "form\u000cfeed",
  "surrogate pair 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math", "𠀀 extension B", "CJK 〇〡 〻", "ＡＢＣ ｆｕｌｌ",
  "Hello World! 你好世界! こんにちは世界! 123 😀 <｜User｜>", "   \n   \n", " \n", "\n ",
  "a\n\nb", "a \n b", "end.\n", "   x", "x   ", "!", "a!", "!a", " !", "! ", "a-b", "a--b",
  "'s", "'S", "'ll", " 'll", "don't", "DON'T", "rock'n'roll",
];

// Deterministic mixes of the pieces above, for combinations nobody thought of.
let seed = 12345;
function next() {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed;
}
const atoms = ["the", " cat", "猫", "123", "4567", " ", "  ", "\n", "\t", "😀", "é", "!", "?!",
  "<｜User｜>", "<｜end▁of▁sentence｜>", "def", "(", ")", "{", "}", "\"", "'", "'s", "x_1", ".",
  "数据", "カナ", "한국", "Ω", "—", "\r\n", "0", "9", "_", "-", "/", "#", "@", "¥", "👍🏽"];
const mixed = [];
for (let i = 0; i < 80; i++) {
  let s = "";
  const n = 1 + (next() % 12);
  for (let j = 0; j < n; j++) {
    s += atoms[next() % atoms.length];
  }
  mixed.push(s);
}
const long = [
  "The quick brown fox jumps over the lazy dog. ".repeat(40),
  "深度学习".repeat(100),
  "1234567890".repeat(30),
  " ".repeat(300) + "x",
  "line\n".repeat(50),
  "def f():\n    pass\n\n".repeat(20),
];

// Variants of the same file exercise what DeepSeek-V3's does not use: each replaces some of its
// components and adds tokens; the test applies the same changes before comparing.
const variants = [
  {
    name: "gpt2-style byte level, NFKC, added-token flags",
    replace: {
      normalizer: { type: "NFKC" },
      pre_tokenizer: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    },
    added: [
      { content: "<mask>", single_word: false, lstrip: true, rstrip: false, normalized: false, special: true },
      { content: "[R]", single_word: false, lstrip: false, rstrip: true, normalized: false, special: true },
      { content: "zqxword", single_word: true, lstrip: false, rstrip: false, normalized: true, special: false },
      { content: "ﬁzz", single_word: false, lstrip: false, rstrip: false, normalized: true, special: false },
    ],
    texts: ["Hello world", " Hello  world", "I saw a   <mask> there", "<mask>", "a <mask><mask> b",
      "[R]   next", "x[R]\n\ny", "zqxword alone", "inzqxword", "zqxwords", "(zqxword)", "fizz ﬁzz",
      "ＡＢＣ１２３", "don't 'll 've", "numbers 12345 678", "  spaces   everywhere  ", "tab\tnew\nline",
      "Ⅻ ½ ﬁ", "café\u0301", "你好，世界", "emoji 😀 here", ""],
  },
  {
    name: "Split behaviours and Digits",
    replace: {
      pre_tokenizer: { type: "Sequence", pretokenizers: [
        { type: "Digits", individual_digits: true },
        { type: "Split", pattern: { String: "-" }, behavior: "MergedWithPrevious", invert: false },
        { type: "Split", pattern: { Regex: "\\s+" }, behavior: "MergedWithNext", invert: false },
        { type: "Split", pattern: { Regex: "[aeiou]" }, behavior: "Contiguous", invert: false },
        { type: "Split", pattern: { String: "#" }, behavior: "Removed", invert: false },
        { type: "Split", pattern: { Regex: "[^xyz]+" }, behavior: "Isolated", invert: true },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
      ] },
    },
    added: [],
    texts: ["the-final--countdown", "a 12345 b", "queueing aeiou", "drop#the#hashes##",
      "xyzzy plugh xyz", "  lead and trail  ", "-start and end-", "année 2024-06-01", ""],
  },
];

function withVariant(json, variant) {
  const changed = { ...json, ...variant.replace };
  const maxId = Math.max(...json.added_tokens.map((t) => t.id));
  changed.added_tokens = [...json.added_tokens,
    ...variant.added.map((t, i) => ({ id: maxId + 1 + i, ...t }))];
  return changed;
}

async function encodeAll(tokenizer, texts) {
  const cases = [];
  for (const text of texts) {
    const encoding = await tokenizer.encode(text, null, { addSpecialTokens: false });
    const ids = Array.from(encoding.getIds());
    cases.push({ text, ids, decoded: await tokenizer.decode(ids, false) });
  }
  return cases;
}

const original = JSON.parse(readFileSync(tokenizerJson, "utf8"));
const fixture = {
  generator: "npm tokenizers " + require("tokenizers/package.json").version,
  tokenizer: "deepseek-v3-tokenizer/tokenizer.json",
  cases: await encodeAll(Tokenizer.fromFile(tokenizerJson), [...fixed, ...mixed, ...long]),
  variants: [],
};
for (const variant of variants) {
  const tokenizer = Tokenizer.fromString(JSON.stringify(withVariant(original, variant)));
  fixture.variants.push({ name: variant.name, replace: variant.replace, added: variant.added,
    cases: await encodeAll(tokenizer, variant.texts) });
}
writeFileSync(out, JSON.stringify(fixture, null, 1) + "\n");
console.log(`${fixture.cases.length} cases and ${fixture.variants.length} variants written to ${out}`);
