"""Renders conversations with DeepSeek-V3's own chat template (the Jinja text of its
tokenizer_config.json), the way transformers' apply_chat_template does (a sandboxed Jinja
environment with trim_blocks and lstrip_blocks, add_generation_prompt=True), and writes them with
the rendered prompts to deepseek-v3.json, which ChatTemplateTest compares with the proxy's
deepseek-v3 template.

    python3 render-deepseek-v3.py ../../../../../shared/models/deepseek-v3-tokenizer/tokenizer_config.json
"""
import json
import sys

from jinja2.sandbox import ImmutableSandboxedEnvironment

config = json.load(open(sys.argv[1], encoding="utf-8"))
environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
template = environment.from_string(config["chat_template"])


def s(content):
    return {"role": "system", "content": content}


def u(content):
    return {"role": "user", "content": content}


def a(content):
    return {"role": "assistant", "content": content}


conversations = [
    [u("Hello")],
    [s("You are a helpful assistant."), u("What is 2+2?")],
    [s("S"), u("U1"), a("A1"), u("U2")],
    [u("U1"), a("A1"), u("U2"), a("A2"), u("U3")],
    [s("first"), s("second"), u("hi")],
    [u("a"), u("b")],
    [s("S1"), u("U1"), s("S2 in the middle"), a("A1"), u("U2")],
    [a("assistant first"), u("then the user")],
    [u("U1"), a(""), u("U2")],
    [u("multi\nline\n\ncontent  with  spaces "), a(" spaced reply\n"), u("你好 😀")],
]

out = [{"messages": m,
        "prompt": template.render(messages=m, add_generation_prompt=True,
                                  bos_token=config["bos_token"]["content"])}
       for m in conversations]
with open("deepseek-v3.json", "w", encoding="utf-8") as f:
    json.dump({"generator": "jinja2 " + __import__("jinja2").__version__,
               "template": "deepseek-v3-tokenizer/tokenizer_config.json chat_template",
               "conversations": out}, f, ensure_ascii=False, indent=1)
    f.write("\n")
print(len(out), "conversations rendered")
