#!/usr/bin/env python3
"""Expected token ids and chat renderings for rlvr's tokenizer tests, from HF `tokenizers`
and `transformers` (versions pinned in requirements.txt).

Writes, under tests/fixtures/tokenizer/:
  corpus.jsonl             the test corpus: {"text": ..., "hex": ...} (hex: the UTF-8 bytes,
                           which C reads, since JSON strings cannot carry U+0000 through cJSON),
                           or {"hex": ...} alone for invalid UTF-8 (HF is given
                           bytes.decode('utf-8', 'replace'); rlvr the raw bytes)
  <name>.expected.jsonl    per corpus line: ids (add_special_tokens=False), ids_special (True),
                           decoded, decoded_skip (skip_special_tokens), decoded_half (first half
                           of the ids) as hex of their UTF-8, and a last line {"big": ...} for
                           the 100 kB text
  chat.jsonl               apply_chat_template renderings per family
  templates/*.jinja        the SmolLM2 and DeepSeek-R1 templates (no tokenizer files for them)
  synth-*.json             two small tokenizers trained here on the corpus, for features the real
                           files do not exercise (see synthetic_tokenizers), with their expected ids

The 100 kB text is not stored: both sides build it the same way (corpus texts joined by "\n",
repeated until >= 100,000 bytes); its ids are checked by count and FNV-1a-64 of the ids.

Run from the repository root:  python3 tests/reference/gen_tokenizer_fixtures.py
"""
import json
import os
import sys

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(ROOT, "..", "shared", "data", "tokenizers")
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
TOKENIZERS = ["gpt2", "qwen2.5", "llama3", "tinyllama-llama2"]

TEXTS = [
    "",
    "Hello world",
    "Hello, world! How are you today?",
    " leading space",
    "  two leading spaces",
    "trailing space ",
    "trailing spaces   ",
    "I'm sure they'll say we'd've done it, but don't you think it's OK? IT'S FINE. She'S HERE. 'tis",
    "don't DON'T Don't won't can't shan't y'all rock'n'roll",
    "1234567890",
    "3.14159265358979 and 2.71828",
    "In 2024, 1,000,000 people paid $12,345.67 for 100000 items (99.9%).",
    "0 00 000 0000 00000 000000",
    "x = 42; y = x ** 2 // 7",
    "a\nb\n\nc\n\n\nd",
    "line1\r\nline2\r\n\r\nline3",
    "\t\ttabs\tand\tspaces  \t mixed",
    " " * 50,
    "\n" * 10,
    "  \n  \n\n   \t\n",
    "word" + " " * 17 + "word",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "int main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n",
    '{"key": [1, 2, 3], "nested": {"a": null, "b": true}}',
    "for (let i = 0; i < arr.length; i++) { sum += arr[i]; }",
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;",
    "https://example.com/path?query=1&other=two#frag",
    "The quick brown fox jumps over the lazy dog.",
    "Grüße aus München! Ärger, Öl, Übermut, ß.",
    "Ça va? L'été dernier, où êtes-vous allés? naïve café",
    "El niño comió piñata. ¿Qué? ¡Sí!",
    "Привет, мир! Как дела?",
    "Γειά σου Κόσμε",
    "你好，世界！今天天气很好。",
    "日本語のテキスト、カタカナとひらがな。",
    "한국어 텍스트입니다. 안녕하세요!",
    "مرحبا بالعالم! كيف حالك؟",
    "שלום עולם",
    "नमस्ते दुनिया, आप कैसे हैं?",
    "สวัสดีชาวโลก",
    "Tiếng Việt có dấu: người, được, những.",
    "Türkçe: İstanbul, ığdır, şöyle.",
    "e\u0301 decomposed vs \u00e9 composed; A\u030a vs \u00c5; \u1100\u1161\u11a8",
    "Emoji: 😀 😃 👍🏽 🎉🎉🎉",
    "ZWJ family: 👨\u200d👩\u200d👧\u200d👦 and 🏳️\u200d🌈 and 👩🏻\u200d💻",
    "Flags: 🇫🇷🇩🇪🇯🇵 hearts ❤️💙",
    "Math: ∑_{i=1}^n x_i² ≤ ∞, α+β=γ, √2 ≈ 1.414",
    "LaTeX: \\frac{1}{2} + \\sqrt{x^2 + y^2} = \\boxed{42}",
    "Unicode spaces:\u00a0nbsp\u3000ideo\u2028ls\u2029ps\u0085nel\u180emvs\u200bzwsp\u2009thin",
    "Controls: \x00 \x01 \x1b[31mred\x1b[0m \x7f",
    "<|endoftext|>",
    "text before<|endoftext|>text after",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<s>hello</s> <unk> <s> spaced </s>",
    "partial <|im_start <|endoftext| <|eot_id",
    "<|eot_id|><|eot_id|><|im_end|><|im_end|>",
    "a" * 300,
    "supercalifragilisticexpialidocious" * 12,
    "9" * 120,
    "ab" * 200 + " " + "xyz" * 100,
    "Mixed123Numbers456and789letters",
    "CamelCaseIdentifierWithACRONYMSInside",
    "snake_case_identifier = another_one",
    "!!!???...,,,;;;:::---___===+++",
    "'s 't 're 've 'm 'll 'd",
    " 's ' s '' \"\" ``",
    "Ａ全角ＡＢＣ１２３",
    "ﬁ ligature ﬀ and ½ ⅓ ① ²",
    "Ǆ ǅ ǆ and ΐ",
    "\u2581 lower one eighth block \u2581\u2581",
    "Ġ ċ Ċ byte chars in text",
    # added-token flags of the synthetic tokenizers: lstrip, rstrip, single_word, normalized
    "a   <mask>  b <mask>",
    "x [END]   y\t[END]\n\nz",
    "a word, words, sword word_ _word WORD",
    "Raw Text and raw text and RAW TEXT",
    "<tag> and <TAG> and ``quoted``",
    "pre-fix co-op 1-2-3 -- end.",
    " spaced  spaced spaced ",
    # single_word neighbours (regressions: an unassigned code point is not a word character;
    # a join control, a combining mark and a letter number are)
    "word\U00010062 \u200dword word\u0301 word\u2168 word\u00bd word\u24b6",
]

INVALID = [
    b"\xff\xfe invalid start",
    b"abc\xe2\x82",
    b"\xc3\x28 bad continuation",
    b"surrogate \xed\xa0\x80 here",
    b"truncated emoji \xf0\x9f\x98 then text",
    b"overlong \xc0\xaf slash",
    b"\x80\x80\x80 stray continuations",
    b"mixed \xe4\xb8 \xe4\xb8\xad ok",
]


def big_text():
    chunk = "\n".join(t for t in TEXTS)
    parts = []
    size = 0
    while size < 100000:
        parts.append(chunk)
        size += len(chunk.encode("utf-8")) + 1
    return "\n".join(parts)


def load_reference(path):
    """tokenizers 0.23 refuses two things in the GPT-2 file (an old serialisation): a model
    without "type", and the one merge ("ĠCla ude") whose result is not in the vocab. The
    reference adds the type and drops merges that cannot produce a token (which changes no
    encoding); rlvr reads the file unmodified and skips such merges the same way."""
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    m = d["model"]
    if "type" not in m:
        m["type"] = "BPE"
        vocab = m["vocab"]
        m["merges"] = [x for x in m["merges"]
                       if (x.replace(" ", "", 1) if isinstance(x, str) else "".join(x)) in vocab]
    return Tokenizer.from_str(json.dumps(d))


def synthetic_tokenizers():
    """Two small tokenizers trained on the corpus, for what the real files do not use:
    NFKC/Lowercase/Replace normalizers, Metaspace with split, Split with every behaviour and
    invert, ByteLevel with add_prefix_space, byte fallback with fuse_unk, added tokens with
    lstrip/rstrip/single_word/normalized, TemplateProcessing with a token on each side."""
    out = {}
    # SentencePiece-like: Metaspace pre-tokenizer and decoder, byte fallback, unk
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    specials = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=520, special_tokens=specials, limit_alphabet=60, show_progress=False)
    tok.train_from_iterator(TEXTS, trainer)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True),
                            AddedToken("[END]", rstrip=True, special=True)])
    tok.add_tokens([AddedToken("word", single_word=True, normalized=True),
                    AddedToken("Raw Text", normalized=False)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> $B </s>",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>")),
                                                                       ("</s>", tok.token_to_id("</s>"))])
    out["synth-metaspace"] = tok
    # byte-level with a chain of Split pre-tokenizers
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.Replace("``", '"'), normalizers.NFD()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(" ", behavior="merged_with_next"),
        pre_tokenizers.Split(pattern=__import__("tokenizers").Regex("\\p{N}"), behavior="isolated"),
        pre_tokenizers.Split("-", behavior="removed"),
        pre_tokenizers.Split(pattern=__import__("tokenizers").Regex("[.!?]+"), behavior="merged_with_previous"),
        pre_tokenizers.Split(pattern=__import__("tokenizers").Regex("[a-z]+"), behavior="isolated", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=["<|sep|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TEXTS, trainer)
    tok.add_tokens([AddedToken("<tag>", normalized=True), AddedToken(" spaced ", normalized=False)])
    out["synth-split"] = tok
    return out


def hexs(text):
    return text.encode("utf-8").hex()


def fnv_ids(ids):
    h = 0xCBF29CE484222325
    for i in ids:
        for b in int(i).to_bytes(4, "little", signed=True):
            h ^= b
            h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def fingerprint(template):
    # FNV-1a 64 of the template with surrounding ASCII whitespace removed (C: tok_chat_family_of).
    h = 0xCBF29CE484222325
    for b in template.strip(" \t\r\n").encode("utf-8"):
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# DeepSeek-R1 (and its Distill models) chat template, as published in their tokenizer_config.json.
DEEPSEEK_R1_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}"
    "{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}"
    "{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}"
    "{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}"
    "{%- set ns.is_first = true -%}{%- else %}"
    "{{'\\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}"
    "{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}"
    "{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}"
    "{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}"
    "{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}"
    "{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}"
    "{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}"
    "{%- set ns.is_output_first = false %}{%- else %}"
    "{{'\\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}"
    "{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}"
    "{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜>'}}{% endif %}"
)

# Templates rlvr does not recognise, rendered through its Jinja subset (family "jinja:NAME").
QWEN25_MATH_TEMPLATE = None  # built from the Qwen2.5 template in main(): Qwen2.5-Math's default system prompt

MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)

FEATURES_TEMPLATE = """{#- exercises rlvr's Jinja subset -#}
{%- set ns = namespace(chars=0, users=[]) %}
{%- for m in messages[-3:] %}
  {%- set ns.chars = ns.chars + m['content'] | trim | length %}
  {%- if m.role == 'user' and m.content is defined and m.content is not none %}
    {%- set ns.users = ns.users + [m.content.split(' ') | first] %}
  {%- endif %}
  {{ loop.index }}/{{ loop.length }} {{ m.role | upper }}{{ '!' if m.content.startswith('T') else '' }}
  {%- if loop.first %} (first){% elif loop.last %} (last){% else %} ({{ loop.revindex0 }} to go){% endif %}
{% endfor %}
{{- 'chars=' ~ ns.chars ~ ' users=' ~ ns.users | join(',') }}
{%- if 'Hi' in messages | map(attribute='content') | list %}never{% endif %}
{%- if add_generation_prompt and not (messages[0].role == 'assistant') %}
<gen>{{ messages[-1]['content'].replace('a', 'A').rstrip() }}</gen>
{%- endif %}"""

CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}],
    [{"role": "system", "content": "You are a math tutor."}, {"role": "user", "content": "Solve x+1=3."}],
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
    ],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "  spaces around \n"},
        {"role": "assistant", "content": "<think>2+2 is 4</think>The answer is 4."},
        {"role": "user", "content": "Thanks\n"},
    ],
    [{"role": "user", "content": "Café 😀 中文\n\tTabbed"}],
]


def main():
    os.makedirs(os.path.join(OUT, "templates"), exist_ok=True)
    with open(os.path.join(OUT, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for t in TEXTS:
            f.write(json.dumps({"text": t, "hex": t.encode("utf-8").hex()}, ensure_ascii=True) + "\n")
        for b in INVALID:
            f.write(json.dumps({"hex": b.hex()}) + "\n")
    inputs = list(TEXTS) + [b.decode("utf-8", errors="replace") for b in INVALID]
    big = big_text()

    synth = synthetic_tokenizers()
    for name in synth:
        synth[name].save(os.path.join(OUT, name + ".json"))
    for name in TOKENIZERS + list(synth):
        if name in synth:
            tok = Tokenizer.from_file(os.path.join(OUT, name + ".json"))
        else:
            tok = load_reference(os.path.join(SHARED, name, "tokenizer.json"))
        with open(os.path.join(OUT, name + ".expected.jsonl"), "w", encoding="utf-8") as f:
            for text in inputs:
                ids = tok.encode(text, add_special_tokens=False).ids
                # decodes as hex of their UTF-8: JSON strings cannot carry U+0000 through cJSON
                rec = {
                    "ids": ids,
                    "ids_special": tok.encode(text, add_special_tokens=True).ids,
                    "decoded": hexs(tok.decode(ids, skip_special_tokens=False)),
                    "decoded_skip": hexs(tok.decode(ids, skip_special_tokens=True)),
                    "decoded_half": hexs(tok.decode(ids[: len(ids) // 2], skip_special_tokens=False)),
                }
                f.write(json.dumps(rec, ensure_ascii=True) + "\n")
            big_ids = tok.encode(big, add_special_tokens=False).ids
            f.write(json.dumps({"big": {"bytes": len(big.encode("utf-8")), "n": len(big_ids),
                                        "fnv": fnv_ids(big_ids)}}) + "\n")
        # the llama.cpp test vectors, as an extra check of the reference itself
        print(name, "ok")

    with open(os.path.join(OUT, "templates", "smollm2.jinja"), "w", encoding="utf-8") as f:
        f.write(SMOLLM2_TEMPLATE)
    with open(os.path.join(OUT, "templates", "deepseek-r1.jinja"), "w", encoding="utf-8") as f:
        f.write(DEEPSEEK_R1_TEMPLATE)

    fams = []
    for fam, d in [("qwen2.5", "qwen2.5"), ("llama3", "llama3"), ("zephyr", "tinyllama-llama2")]:
        hf = AutoTokenizer.from_pretrained(os.path.join(SHARED, d))
        fams.append((fam, hf, None, {}))
    base = fams[0][1]
    fams.append(("smollm2", base, SMOLLM2_TEMPLATE, {}))
    fams.append(("deepseek-r1", base, DEEPSEEK_R1_TEMPLATE,
                 {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>"}))
    qwen_math = fams[0][1].chat_template.replace(
        "You are a helpful assistant.", "Please reason step by step, and put your final answer within \\\\boxed{}.")
    features = FEATURES_TEMPLATE.replace("{%- if 'Hi' in messages | map(attribute='content') | list %}never{% endif %}\n", "")
    for name, tmpl in [("qwen2.5-math", qwen_math), ("mistral", MISTRAL_TEMPLATE), ("features", features)]:
        with open(os.path.join(OUT, "templates", name + ".jinja"), "w", encoding="utf-8") as f:
            f.write(tmpl)
        fams.append(("jinja:" + name, base, tmpl, {"bos_token": "<s>", "eos_token": "</s>"}))
    with open(os.path.join(OUT, "chat.jsonl"), "w", encoding="utf-8") as f:
        for fam, hf, template, kw in fams:
            tmpl = template if template is not None else hf.chat_template
            print(fam, "fingerprint", fingerprint(tmpl))
            bos = kw.get("bos_token", hf.bos_token)
            eos = kw.get("eos_token", hf.eos_token)
            for conv in CONVERSATIONS:
                for agp in (True, False):
                    rec = {"family": fam, "fingerprint": fingerprint(tmpl), "bos": bos, "eos": eos,
                           "messages": conv, "add_generation_prompt": agp}
                    try:
                        rec["rendered"] = hf.apply_chat_template(conv, chat_template=template,
                                                                 add_generation_prompt=agp, tokenize=False, **kw)
                    except Exception as ex:  # a template's raise_exception: rlvr must refuse too
                        rec["error"] = str(ex)
                    f.write(json.dumps(rec, ensure_ascii=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
