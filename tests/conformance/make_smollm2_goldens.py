#!/usr/bin/env python3
"""Reference goldens for the real default model, SmolLM2-135M-Instruct (Q4_1 GGUF).

Run by hand from the reference venv after `bash scripts/fetch_model.sh` (see
tests/conformance/README.md). Two references are recorded for every position:

  transformers: AutoModelForCausalLM on the GGUF (dequantized to fp32, Q/K rows
                un-permuted), run in fp32. This is the exact result for the
                file's weights.
  llama.cpp:    llama-cpp-python's logits for the same sequence. llama.cpp
                quantizes activations to 8 bits inside its Q4_1 dot products and
                keeps an F16 KV cache, so it differs from the exact result by up to
                ~1 logit and flips the argmax at near-ties.

Outputs:
  tests/data/smollm2/golden.json       top-10 (id, logit) per position for 7 prompts,
                                       each continued greedily by llama.cpp for 64 tokens
  tests/data/smollm2/chat_golden.json  transformers' 32-token greedy answer to a chat
                                       prompt, with and without the default system prompt
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may come from a model hub

import jinja2
import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

import llama_cpp
from llama_cpp import Llama

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "models"
MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = ROOT / "tests" / "data" / "smollm2"

N_CONTINUE = 64
N_CHAT = 32
TOP = 10
EOS = 2  # <|im_end|>
N_THREADS = 2
LLAMA_KW = dict(n_ctx=512, logits_all=True, n_threads=N_THREADS, seed=0, verbose=False)

CHAT_QUESTION = "What is the capital of France?"

# (name, text, kind): kind "plain" is tokenized as text; "chat" is a user message
# rendered with the model's own ChatML template (default system prompt included),
# tokenized with special tokens recognised so <|im_start|> is a single token.
PROMPTS = [
    ("english", "The old lighthouse keeper climbed the stairs every evening, and", "plain"),
    ("question", "Question: Why is the sky blue?\nAnswer:", "plain"),
    ("python", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n", "plain"),
    ("arithmetic", "12 + 35 = 47\n81 - 19 = 62\n7 * 8 = 56\n144 / 12 =", "plain"),
    ("list", "Things to pack for a beach trip:\n1. Sunscreen\n2.", "plain"),
    ("chat_capital", CHAT_QUESTION, "chat"),
    ("chat_colors", "Name three primary colors.", "chat"),
]


def r7(x: float) -> float:
    return float(f"{x:.7g}")


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n")
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")


def top_k(logits: np.ndarray, k: int = TOP) -> list[list[list]]:
    """Per position: the k best [id, logit] pairs, best first (ties by lower id)."""
    out = []
    for row in logits:
        idx = np.lexsort((np.arange(row.size), -row))[:k]
        out.append([[int(i), r7(float(row[i]))] for i in idx])
    return out


def render_chat(template: str, messages: list[dict]) -> str:
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(messages=messages, add_generation_prompt=True)


def llama_greedy(llm: Llama, prompt: list[int], n: int) -> list[int]:
    """Greedy (temperature 0 = argmax) decoding one token at a time, without
    stopping at EOS: the sampler is bypassed so nothing ends the loop early."""
    llm.reset()
    llm.eval(prompt)
    out = []
    for _ in range(n):
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(tok)
        llm.eval([tok])
    return out


def llama_logits(llm: Llama, ids: list[int]) -> np.ndarray:
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[:len(ids)], dtype=np.float32)


def hf_logits(model, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def hf_greedy(model, ids: list[int], n: int) -> list[int]:
    model.generation_config.eos_token_id = None
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             do_sample=False, max_new_tokens=n, min_new_tokens=n,
                             eos_token_id=None, pad_token_id=EOS)
    new = out[0, len(ids):].tolist()
    assert len(new) == n, f"generate gave {len(new)} tokens, want {n}"
    return new


def first_eos(ids: list[int]):
    return ids.index(EOS) if EOS in ids else None


def main() -> None:
    path = MODEL_DIR / MODEL
    if not path.exists():
        sys.exit(f"{path} is missing: run scripts/fetch_model.sh first")
    torch.manual_seed(0)
    torch.set_num_threads(N_THREADS)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    versions = {
        "transformers": transformers.__version__, "torch": torch.__version__,
        "llama_cpp_python": llama_cpp.__version__, "gguf": importlib.metadata.version("gguf"),
        "llama_cpp_system_info": llama_cpp.llama_print_system_info().decode().strip(),
    }
    print(versions)

    llm = Llama(str(path), **LLAMA_KW)
    template = llm.metadata["tokenizer.chat_template"]
    tok = AutoTokenizer.from_pretrained(MODEL_DIR, gguf_file=MODEL)
    model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, gguf_file=MODEL, dtype=torch.float32).eval()

    cases = []
    agree = total = 0
    worst_top5 = 0.0
    worst_case = None
    for name, text, kind in PROMPTS:
        prompt = render_chat(template, [{"role": "user", "content": text}]) if kind == "chat" else text
        special = kind == "chat"
        ids_cpp = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=special)
        ids_hf = tok(prompt, add_special_tokens=False)["input_ids"]
        if ids_cpp != ids_hf:
            print(f"  {name}: TOKENIZATION DIFFERS\n    llama.cpp    {ids_cpp}\n    transformers {ids_hf}")
        cont = llama_greedy(llm, ids_cpp, N_CONTINUE)
        ids = ids_cpp + cont
        n_prompt = len(ids_cpp)

        hf = hf_logits(model, ids)
        cpp = llama_logits(llm, ids)

        # Statistics over the N_CONTINUE positions that predict the continuation.
        span = range(n_prompt - 1, len(ids) - 1)
        hf_arg = hf[span.start:span.stop].argmax(1)
        cpp_arg = cpp[span.start:span.stop].argmax(1)
        agree += int((hf_arg == cpp_arg).sum())
        total += len(span)
        for p in span:
            top5 = np.argsort(-hf[p])[:5]
            d = float(np.abs(hf[p, top5] - cpp[p, top5]).max())
            if d > worst_top5:
                worst_top5, worst_case = d, (name, p)
        # The batch (teacher-forced) llama.cpp pass need not reproduce its own
        # one-token-at-a-time decode exactly; say so when it does not.
        self_agree = int((cpp_arg == np.array(cont)).sum())
        flips = [int(p) for p, a, b in zip(span, hf_arg, cpp_arg) if a != b]
        margins = [r7(float(np.sort(hf[p])[-1] - np.sort(hf[p])[-2])) for p in flips]
        print(f"  {name}: {n_prompt} prompt tokens, argmax agree {int((hf_arg == cpp_arg).sum())}/{len(span)}"
              f" (flips at {flips}, transformers margins {margins}); llama.cpp batch vs its decode "
              f"{self_agree}/{len(span)}; first EOS in continuation: {first_eos(cont)}")
        print(f"    continuation: {llm.detokenize(cont, special=True).decode('utf-8', 'replace')!r}")

        case = {
            "name": name, "kind": kind, "prompt": prompt, "ids": ids, "n_prompt": n_prompt,
            "continuation_first_eos": first_eos(cont),
            # Positions (as in *_top) where the two references' argmax differ, and
            # where llama.cpp's batch pass differs from its own token-by-token decode.
            "argmax_differs_at": flips,
            "llamacpp_batch_differs_from_decode_at": [p for p, a, t in zip(span, cpp_arg, cont) if a != t],
            "transformers_top": top_k(hf), "llamacpp_top": top_k(cpp),
        }
        if ids_cpp != ids_hf:
            case["transformers_prompt_ids"] = ids_hf
        cases.append(case)

    print(f"argmax agreement transformers vs llama.cpp: {agree}/{total}")
    print(f"max |delta| over transformers' top-5 logits: {worst_top5:.4f} at {worst_case}")

    OUT.mkdir(parents=True, exist_ok=True)
    write_json(OUT / "golden.json", {
        "model": MODEL, "sha256": sha, "versions": versions,
        "settings": {
            "tokenize": "llama.cpp, no BOS; special=True for chat prompts only",
            "chat_template": "the GGUF's tokenizer.chat_template, add_generation_prompt=True",
            "continuation": f"llama.cpp greedy argmax, {N_CONTINUE} tokens, one at a time, not stopped at EOS",
            "llama_cpp": {**LLAMA_KW, "kv_cache": "default (F16)"},
            "transformers": "from_pretrained(gguf_file=..., dtype=float32), one forward over ids",
            "top": f"per position p (0..len(ids)-1) the {TOP} best [id, logit] of the logits predicting "
                   "token p+1, best first",
        },
        "summary": {"argmax_agree": agree, "argmax_positions": total,
                    "max_abs_delta_top5": r7(worst_top5)},
        "cases": cases,
    })

    # ---- transformers' greedy chat answer, with and without the default system prompt
    chats = []
    for label, prompt in (
        ("default_system", render_chat(template, [{"role": "user", "content": CHAT_QUESTION}])),
        ("no_system", f"<|im_start|>user\n{CHAT_QUESTION}<|im_end|>\n<|im_start|>assistant\n"),
    ):
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        ids_cpp = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        assert ids == ids_cpp, f"{label}: tokenizers disagree: {ids} vs {ids_cpp}"
        new = hf_greedy(model, ids, N_CHAT)
        eos = first_eos(new)
        chats.append({
            "label": label, "prompt": prompt, "prompt_ids": ids, "greedy": new,
            "text": tok.decode(new, skip_special_tokens=False),
            "first_eos": eos,
            "answer": tok.decode(new[:eos] if eos is not None else new, skip_special_tokens=True),
        })
        print(f"  chat {label}: {chats[-1]['answer']!r} (EOS at {eos})")
    write_json(OUT / "chat_golden.json", {
        "model": MODEL, "sha256": sha, "versions": versions,
        "question": CHAT_QUESTION,
        "settings": {"reference": "transformers fp32 on the dequantized GGUF",
                     "generate": {"do_sample": False, "max_new_tokens": N_CHAT, "min_new_tokens": N_CHAT,
                                  "eos_token_id": None, "stop_at_eos": False},
                     "answer": "decode of the tokens before the first EOS (id 2, <|im_end|>)"},
        "cases": chats,
    })


if __name__ == "__main__":
    main()
