#!/usr/bin/env python3
"""Makes the tokenizer conformance data under tests/data/tokenizers/.

Run by hand (CI never runs it), from the repository root, with a venv that has
`tokenizers`, `transformers`, `gguf` and `torch`, and without network access to a
model hub:

    bash scripts/fetch_model.sh
    HF_HUB_OFFLINE=1 /path/to/venv/bin/python tests/conformance/make_tokenizer_goldens.py

It writes:
  smollm2/{tokenizer.json, tokenizer_config.json, chat_template.jinja}
      SmolLM2-135M-Instruct's tokenizer, rebuilt by transformers from the GGUF.
  small_bpe/{tokenizer.json, tokenizer_config.json}
      a 512-token byte-level BPE (GPT-2 pre-tokenization) trained on
      training_text.txt; `<|endoftext|>` is id 0 and serves as bos and eos.
  llama3_style/{tokenizer.json, tokenizer_config.json}
      a 512-token byte-level BPE with the Llama-3 split regex, `ignore_merges`,
      a BOS-adding post-processor and merges in the legacy "a b" string form.
  unicode_classes.json
      the code points HF's regex engine counts as \\s, \\p{L}, \\p{N}, and those
      its Digits pre-tokenizer counts as digits.
  golden_ids.json
      for each tokenizer and each string of tricky_strings.json: the ids of
      `encode(s, add_special_tokens=True)`, the decodes of those ids, and the
      pieces its pre-tokenizer alone makes of the string; and the ids of 300
      seeded random strings (`random_strings`, `random_ids`).
"""

import importlib.metadata
import json
import os
import platform
import random
import re
import shutil
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gguf  # noqa: E402
import tokenizers  # noqa: E402
import transformers  # noqa: E402
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data", "tokenizers")
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write("\n")


def gguf_string(reader, key):
    field = reader.fields[key]
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def make_smollm2():
    out = os.path.join(DATA, "smollm2")
    os.makedirs(out, exist_ok=True)
    models_dir = os.path.join(ROOT, "models")
    reader = gguf.GGUFReader(os.path.join(models_dir, GGUF_NAME))
    pre = gguf_string(reader, "tokenizer.ggml.pre")
    if pre != "smollm":
        sys.exit(f"expected tokenizer.ggml.pre = smollm in {GGUF_NAME}, found {pre!r}")

    tok = transformers.AutoTokenizer.from_pretrained(models_dir, gguf_file=GGUF_NAME)
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        fast = Tokenizer.from_file(os.path.join(tmp, "tokenizer.json"))
        # transformers' GGUF converter ignores `tokenizer.ggml.pre` and writes a
        # bare ByteLevel pre-tokenizer. SmolLM2's own tokenizer.json (and
        # llama.cpp's "smollm" pre-tokenizer) first isolates every digit, which
        # changes the split of whitespace before digits ("a  1" -> a|ĠĠ|1, not
        # a|Ġ|Ġ1). Restore the model's real pre-tokenizer.
        before = fast.encode("a  1").tokens
        fast.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ])
        after = fast.encode("a  1").tokens
        print(f"smollm2: 'a  1' -> {before} as converted, {after} with the smollm pre-tokenizer")
        # Compact JSON keeps the committed file small (the pretty form is ~3.5 MB).
        fast.save(os.path.join(out, "tokenizer.json"), pretty=False)
        shutil.copy(os.path.join(tmp, "tokenizer_config.json"), out)
        shutil.copy(os.path.join(tmp, "chat_template.jinja"), out)
    size = os.path.getsize(os.path.join(out, "tokenizer.json"))
    print(f"smollm2: tokenizer.json is {size} bytes")


def train_byte_level(pre_tokenizer, special_tokens, text_path):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train([text_path], trainer)
    if tok.get_vocab_size() != 512:
        sys.exit(f"trained vocabulary has {tok.get_vocab_size()} tokens, expected 512")
    return tok


def make_small_bpe():
    out = os.path.join(DATA, "small_bpe")
    os.makedirs(out, exist_ok=True)
    tok = train_byte_level(pre_tokenizers.ByteLevel(add_prefix_space=False), ["<|endoftext|>"],
                           os.path.join(DATA, "training_text.txt"))
    if tok.token_to_id("<|endoftext|>") != 0:
        sys.exit("<|endoftext|> is not id 0")
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.save(os.path.join(out, "tokenizer.json"))
    write_json(os.path.join(out, "tokenizer_config.json"), {
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "add_bos_token": False,
        "model_max_length": 1024,
    })


def make_llama3_style():
    out = os.path.join(DATA, "llama3_style")
    os.makedirs(out, exist_ok=True)
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
    tok = train_byte_level(pre, specials, os.path.join(DATA, "training_text.txt"))
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                      special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    # Non-special added tokens, one matched on the raw text and one after
    # normalization (HF matches the two sets in two passes).
    tok.add_tokens([AddedToken("<tool>", normalized=False, special=False),
                    AddedToken("</tool>", normalized=True, special=False)])
    spec = json.loads(tok.to_str())
    spec["model"]["ignore_merges"] = True
    # The legacy merges form ("a b"), which HF still reads.
    spec["model"]["merges"] = [" ".join(m) for m in spec["model"]["merges"]]
    path = os.path.join(out, "tokenizer.json")
    write_json(path, spec)
    check = Tokenizer.from_file(path)
    if not json.loads(check.to_str())["model"]["ignore_merges"]:
        sys.exit("ignore_merges did not survive the round trip")
    write_json(os.path.join(out, "tokenizer_config.json"), {
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
        "model_max_length": 1024,
    })


def to_ranges(code_points):
    ranges = []
    for c in sorted(code_points):
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return ranges


def make_class_tables():
    """Measures what `\\s`, `\\p{L}`, `\\p{N}` and the Digits pre-tokenizer's
    digit test mean inside HF tokenizers, over every Unicode scalar value."""
    scalars = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    text = "".join(chr(c) for c in scalars)
    tables = {}
    for name, pattern in (("whitespace", r"\s"), ("letter", r"\p{L}"), ("number", r"\p{N}")):
        kept = pre_tokenizers.Split(Regex(pattern), behavior="removed").pre_tokenize_str(text)
        not_matched = {ord(ch) for piece, _ in kept for ch in piece}
        tables[name] = to_ranges(c for c in scalars if c not in not_matched)
    # Digits(individual_digits=True) isolates each digit; with "a" between
    # every two scalars, a one-character piece other than "a" is a digit.
    others = [c for c in scalars if c != ord("a")]
    pieces = pre_tokenizers.Digits(individual_digits=True).pre_tokenize_str(
        "a" + "a".join(chr(c) for c in others) + "a")
    tables["digits_pre_tokenizer"] = to_ranges(ord(p) for p, _ in pieces if len(p) == 1 and p != "a")
    tables["note"] = ("Inclusive code point ranges matched by \\s, \\p{L}, \\p{N} in HF tokenizers' "
                      "regexes, and treated as digits by its Digits pre-tokenizer; tokenizers "
                      + tokenizers.__version__)
    with open(os.path.join(DATA, "unicode_classes.json"), "w", encoding="utf-8") as f:
        json.dump(tables, f, separators=(",", ":"))
        f.write("\n")
    print("unicode_classes.json: " + ", ".join(
        f"{k} {len(v)} ranges" for k, v in tables.items() if k != "note"))


# Pieces for random strings: characters of every class the pre-tokenizers
# tell apart, special tokens, and fragments that BPE merges.
RANDOM_POOL = list("aAbBzZ sStTlLmMdDrReEvV'\"  \t\n\r0123456789.,;:!?-_()[]{}<>|/\\@#$%^&*+=~`") + [
    "\r\n", "\u00a0", "\u3000", "\u2009", "\u200b", "\u2028", "\u0085", "\u017f", "\u00e9", "\u00ef",
    "\u0301", "\u0308", "\u4e2d", "\u6587", "\u65e5", "\ud55c", "\u0627", "\u0644", "\u0663", "\u00b2",
    "\u00bd", "\u216b", "\u2460", "\U0001F642", "\U0001F44D", "\U0001F3FD", "\u200d", "\U0001F1EB",
    "\U0001F1F7", "\ufe0f", "\u20e3", "\ufffd", "\ufeff", "\x00", "\x01", "\x7f", "\U000105C0",
    "\U000116D0", "\U00011DE0", "\uffff", "\ue000", "<|im_start|>", "<|im_end|>", "<|endoftext|>",
    "<tool>", "</tool>", "<|begin_of_text|>", "the", " the", "ing", "'s", "'LL", "  ", "\n\n",
]


def random_strings(count, seed):
    rng = random.Random(seed)
    return ["".join(rng.choice(RANDOM_POOL) for _ in range(rng.randint(0, 40))) for _ in range(count)]


def make_goldens():
    with open(os.path.join(DATA, "tricky_strings.json"), encoding="utf-8") as f:
        strings = json.load(f)["strings"]
    randoms = random_strings(300, seed=20240601)
    result = {
        "versions": {
            "python": platform.python_version(),
            "tokenizers": tokenizers.__version__,
            "transformers": transformers.__version__,
            "gguf": importlib.metadata.version("gguf"),
        },
        "note": "ids = Tokenizer.from_file(tokenizer.json).encode(s, add_special_tokens=True).ids; "
                "decode / decode_skip_special = decode(ids, skip_special_tokens=False / True); "
                "pre_tokens = pre_tokenizer.pre_tokenize_str(s) (byte-level text, added tokens not split out).",
        "random_strings": randoms,
        "tokenizers": {},
    }
    for name in ("smollm2", "small_bpe", "llama3_style"):
        tok = Tokenizer.from_file(os.path.join(DATA, name, "tokenizer.json"))
        cases = []
        for s in strings:
            ids = tok.encode(s, add_special_tokens=True).ids
            cases.append({
                "text": s,
                "pre_tokens": [piece for piece, _ in tok.pre_tokenizer.pre_tokenize_str(s)],
                "ids": ids,
                "decode": tok.decode(ids, skip_special_tokens=False),
                "decode_skip_special": tok.decode(ids, skip_special_tokens=True),
            })
            plain = tok.encode(s, add_special_tokens=False).ids
            if tok.decode(plain, skip_special_tokens=False) != s:
                print(f"{name}: HF does not round-trip {s!r}")
        result["tokenizers"][name] = {
            "path": f"tests/data/tokenizers/{name}/tokenizer.json",
            "cases": cases,
            "random_ids": [tok.encode(s, add_special_tokens=True).ids for s in randoms],
        }
    # One line per id list keeps the file small and its diffs readable.
    text = json.dumps(result, ensure_ascii=False, indent=1)
    text = re.sub(r"\[\s+([\d,\s]+?)\s+\]", lambda m: "[" + re.sub(r"\s+", "", m.group(1)) + "]", text)
    with open(os.path.join(DATA, "golden_ids.json"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    print(f"golden_ids.json: {len(strings)} strings x {len(result['tokenizers'])} tokenizers")


def main():
    make_smollm2()
    make_small_bpe()
    make_llama3_style()
    make_goldens()
    make_class_tables()


if __name__ == "__main__":
    main()
