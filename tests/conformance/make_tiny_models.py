#!/usr/bin/env python3
"""Creates the tiny reference checkpoints under tests/data/ and their goldens.

Run by hand from the reference venv (see tests/conformance/README.md); the outputs
are committed so that the C++ tests never need torch. Everything is seeded and the
weights are set explicitly (not by transformers' initialiser), so a rerun with the
same library versions reproduces the same bytes.

Outputs (all under tests/data/):
  tiny_llama/           LlamaForCausalLM, fp32, GQA (4 heads, 2 kv heads), untied
  tiny_llama_f16/       the same weights stored as F16
  tiny_llama_sharded/   the same fp32 weights split over several safetensors shards
  tiny_gpt2/            GPT2LMHeadModel, fp32, tied embeddings
  tiny_gpt2_f16/        the same weights stored as F16
  tiny_llama_gguf/      the tiny Llama written as GGUF (F32 and Q8_0), laid out the
                        way llama.cpp's converter lays out a Llama checkpoint
Each folder holds golden*.json with per-position logits and 32-token greedy
continuations for three fixed prompts.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may come from a model hub

import numpy as np
import torch
import transformers
from transformers import (AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel,
                          LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast)

import gguf
from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType, TokenType
from gguf import quants as gguf_quants
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"

VOCAB = 512
N_NEW = 32
ATTN = "eager"  # plain matmul/softmax attention: the simplest exact reference
# Seeds and std were picked among a handful so that every greedy step of every
# tiny golden (fp32, f16 and q8_0 references) has a top-2 margin of at least 0.02;
# near-ties would make exact greedy comparisons depend on rounding order.
WEIGHT_STD = 0.2
LLAMA_SEED = 2
GPT2_SEED = 2
MIN_GREEDY_MARGIN = 0.02

# Fixed prompts (token ids < VOCAB). The 7-token one touches both ends of the
# vocabulary and the end-of-text id 0, which must not stop anything.
PROMPTS = [
    [17],
    [5, 42, 300, 7, 511, 0, 128],
    [201, 33, 33, 467, 89, 12, 350, 2, 76, 499, 150, 64, 64, 3, 258, 411, 97, 1, 333, 20],
]

# Training text for the 512-entry byte-level BPE shared by all tiny models.
CORPUS = """\
The quick brown fox jumps over the lazy dog. A small model is still a model:
it has an embedding table, a few transformer blocks and a head that turns the
last hidden state into one score for every token in the vocabulary.
def add(a, b):
    return a + b

for i in range(10):
    print(i, add(i, i * 2))
The capital of France is Paris. The capital of Italy is Rome. The capital of
Spain is Madrid, and the capital of Germany is Berlin.
1 + 1 = 2, 2 + 2 = 4, 12 * 12 = 144, 100 - 37 = 63, 3.14159 is close to pi.
Shopping list: apples, bread, cheese, eggs, milk, rice, tomatoes and tea.
Once upon a time there was a server that answered every request with care,
kept its queues short, and never read past the end of a buffer.
Question: what is the weather like today? Answer: it is sunny and warm.
"""


def r7(x: float) -> float:
    """Seven significant digits: enough for fp32 references, compact in JSON."""
    return float(f"{x:.7g}")


def rows7(t: torch.Tensor) -> list[list[float]]:
    return [[r7(v) for v in row] for row in t.tolist()]


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, separators=(",", ":")) + "\n")
    print(f"  wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- tokenizer

def make_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS.splitlines(keepends=True) * 4, trainer)
    if tok.get_vocab_size() != VOCAB:
        sys.exit(f"tokenizer has {tok.get_vocab_size()} entries, want {VOCAB}: extend CORPUS")
    return tok


def save_tokenizer(tok: Tokenizer, folder: Path) -> None:
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                   eos_token="<|endoftext|>", unk_token=None)
    fast.save_pretrained(folder)


def tokenizer_tables(tok: Tokenizer) -> tuple[list[str], list[int], list[str]]:
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    tokens = [None] * len(vocab)
    for text, idx in vocab.items():
        tokens[idx] = text
    specials = {t["id"] for t in spec["added_tokens"]}
    types = [int(TokenType.CONTROL if i in specials else TokenType.NORMAL) for i in range(len(tokens))]
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    return tokens, types, merges


# --------------------------------------------------------------------------- weights

FINAL_NORM_GAIN = 4.0


def init_weights(model: torch.nn.Module, std: float, seed: int, final_norm: str) -> None:
    """Seeded weights, larger than the usual 0.02 so that the blocks do real work.
    Norm gains sit around 1 (not exactly 1, so that a loader which skips them is
    caught); biases are small but nonzero. The final norm (gain and bias) is scaled
    by FINAL_NORM_GAIN so the logits spread out (std ~5) and the greedy argmax is
    decisive: with std ~1 the top-2 margin over 96 steps came down to ~1e-3."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if p.ndim == 1 and name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
            elif p.ndim == 1:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * std)
            if name.startswith(final_norm + "."):
                p.mul_(FINAL_NORM_GAIN)


def llama_config() -> LlamaConfig:
    return LlamaConfig(
        vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, intermediate_size=128,
        max_position_embeddings=256, rope_theta=10000.0, rms_norm_eps=1e-5,
        tie_word_embeddings=False, hidden_act="silu", attention_bias=False,
        bos_token_id=0, eos_token_id=0, pad_token_id=None,
    )


def gpt2_config() -> GPT2Config:
    return GPT2Config(
        vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=256,
        activation_function="gelu_new", layer_norm_epsilon=1e-5, tie_word_embeddings=True,
        bos_token_id=0, eos_token_id=0,
    )


def print_keys(folder: Path) -> None:
    from safetensors import safe_open
    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(f, "pt") as st:
            keys = list(st.keys())
            print(f"  {f.relative_to(ROOT)}: {len(keys)} tensors, dtype "
                  f"{sorted({str(st.get_slice(k).get_dtype()) for k in keys})}")
            for k in keys:
                print(f"    {k} {st.get_slice(k).get_shape()}")


# --------------------------------------------------------------------------- goldens

GENERATE_SETTINGS = {
    "do_sample": False,
    "max_new_tokens": N_NEW,
    "min_new_tokens": N_NEW,
    "eos_token_id": None,
    "stop_at_eos": False,
    "use_cache": True,
    "attn_implementation": ATTN,
    "note": "greedy argmax decoding; end-of-text ids are ordinary tokens and never stop generation",
}


def forward_logits(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


def greedy(model, ids: list[int]) -> list[int]:
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            do_sample=False, max_new_tokens=N_NEW, min_new_tokens=N_NEW,
            eos_token_id=None, pad_token_id=0, use_cache=True,
        )
    new = out[0, len(ids):].tolist()
    assert len(new) == N_NEW, f"generate gave {len(new)} new tokens, want {N_NEW}"
    return new


def greedy_margins(model, ids: list[int], new: list[int]) -> list[float]:
    """Checks the cached generate() against a full teacher-forced forward, and
    returns the top1-top2 logit margin at each generated step so a test knows
    which steps are near-ties."""
    logits = forward_logits(model, ids + new)[len(ids) - 1:-1]
    top2 = logits.topk(2, dim=-1)
    argmax = top2.indices[:, 0].tolist()
    if argmax != new:
        print(f"  WARNING: generate() and the teacher-forced argmax differ: {argmax} vs {new}")
    return [r7(v) for v in (top2.values[:, 0] - top2.values[:, 1]).tolist()]


def golden(model, *, dtype_loaded: str, extra: dict, fp32_model=None) -> dict:
    cases = []
    for ids in PROMPTS:
        case = {"input_ids": ids, "logits": rows7(forward_logits(model, ids))}
        if fp32_model is not None:
            case["logits_fp32_model"] = rows7(forward_logits(fp32_model, ids))
        new = greedy(model, ids)
        case["greedy"] = new
        case["greedy_margins"] = greedy_margins(model, ids, new)
        low = min(case["greedy_margins"])
        print(f"  prompt of {len(ids)}: smallest greedy margin {low:.4f}")
        assert low >= MIN_GREEDY_MARGIN, "a greedy step is a near-tie; pick another seed"
        cases.append(case)
    return {
        "reference": {"transformers": transformers.__version__, "torch": torch.__version__,
                      "gguf": importlib.metadata.version("gguf"),
                      "tokenizers": importlib.metadata.version("tokenizers")},
        "dtype_loaded": dtype_loaded,
        **extra,
        "generate": GENERATE_SETTINGS,
        "cases": cases,
    }


def load(folder: Path, **kw):
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                                 attn_implementation=ATTN, **kw)
    return model.eval()


# --------------------------------------------------------------------------- GGUF

def permute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's converter turns HF's split-half RoPE pairs (i, i+d/2) into
    adjacent rows (2i, 2i+1), per head."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def gguf_tensors(sd: dict[str, torch.Tensor], cfg: LlamaConfig):
    yield "token_embd.weight", sd["model.embed_tokens.weight"].numpy()
    for n in range(cfg.num_hidden_layers):
        p = f"model.layers.{n}."
        yield f"blk.{n}.attn_norm.weight", sd[p + "input_layernorm.weight"].numpy()
        yield f"blk.{n}.attn_q.weight", permute_rows(sd[p + "self_attn.q_proj.weight"].numpy(),
                                                     cfg.num_attention_heads)
        yield f"blk.{n}.attn_k.weight", permute_rows(sd[p + "self_attn.k_proj.weight"].numpy(),
                                                     cfg.num_key_value_heads)
        yield f"blk.{n}.attn_v.weight", sd[p + "self_attn.v_proj.weight"].numpy()
        yield f"blk.{n}.attn_output.weight", sd[p + "self_attn.o_proj.weight"].numpy()
        yield f"blk.{n}.ffn_norm.weight", sd[p + "post_attention_layernorm.weight"].numpy()
        yield f"blk.{n}.ffn_gate.weight", sd[p + "mlp.gate_proj.weight"].numpy()
        yield f"blk.{n}.ffn_up.weight", sd[p + "mlp.up_proj.weight"].numpy()
        yield f"blk.{n}.ffn_down.weight", sd[p + "mlp.down_proj.weight"].numpy()
    yield "output_norm.weight", sd["model.norm.weight"].numpy()
    yield "output.weight", sd["lm_head.weight"].numpy()


def write_gguf(path: Path, sd, cfg: LlamaConfig, tok: Tokenizer, qtype: GGMLQuantizationType) -> None:
    w = GGUFWriter(path, "llama")  # also writes general.architecture = llama
    w.add_name("tiny_llama")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(cfg.head_dim)
    w.add_vocab_size(cfg.vocab_size)
    w.add_file_type(LlamaFileType.ALL_F32 if qtype == GGMLQuantizationType.F32
                    else LlamaFileType.MOSTLY_Q8_0)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    tokens, types, merges = tokenizer_tables(tok)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)
    w.add_add_bos_token(False)

    for name, arr in gguf_tensors(sd, cfg):
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        # As the converter does for a q8_0 output: only matrices are quantized,
        # 1-D norm gains stay F32.
        if qtype == GGMLQuantizationType.F32 or arr.ndim == 1:
            w.add_tensor(name, arr)
        else:
            w.add_tensor(name, gguf_quants.quantize(arr, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"  wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")


def check_gguf_dequant(model, sd, cfg, qtype) -> None:
    """transformers must have recovered exactly our (dequantized, un-permuted) weights."""
    got = model.state_dict()
    worst = 0.0
    for name, ref in sd.items():
        ref = ref.numpy()
        if qtype != GGMLQuantizationType.F32 and ref.ndim == 2:
            ref = gguf_quants.dequantize(gguf_quants.quantize(ref, qtype), qtype)
        worst = max(worst, float(np.abs(got[name].numpy() - ref).max()))
    print(f"  max |weight - expected| after transformers' GGUF load: {worst:g}")
    assert worst == 0.0, "transformers' GGUF load does not reproduce the written weights"


# --------------------------------------------------------------------------- main

def main() -> None:
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")

    tok = make_tokenizer()
    print(f"tokenizer: {tok.get_vocab_size()} entries, sha256 of json "
          f"{hashlib.sha256(tok.to_str().encode()).hexdigest()[:16]}")

    # ---- Llama
    cfg = llama_config()
    llama = LlamaForCausalLM(cfg).eval()
    init_weights(llama, std=WEIGHT_STD, seed=LLAMA_SEED, final_norm="model.norm")
    sd = {k: v.detach().clone() for k, v in llama.state_dict().items()}

    folders = {
        "tiny_llama": dict(),
        "tiny_llama_sharded": dict(max_shard_size="200KB"),
    }
    for name, kw in folders.items():
        out = DATA / name
        out.mkdir(parents=True, exist_ok=True)
        llama.save_pretrained(out, safe_serialization=True, **kw)
        save_tokenizer(tok, out)
    shards = sorted((DATA / "tiny_llama_sharded").glob("*.safetensors"))
    assert len(shards) >= 2 and (DATA / "tiny_llama_sharded" / "model.safetensors.index.json").exists(), \
        f"expected >= 2 shards and an index, got {shards}"

    out = DATA / "tiny_llama_f16"
    out.mkdir(parents=True, exist_ok=True)
    llama_f16 = LlamaForCausalLM(cfg)
    llama_f16.load_state_dict(sd)
    llama_f16.to(torch.float16).save_pretrained(out, safe_serialization=True)
    save_tokenizer(tok, out)

    for name in ("tiny_llama", "tiny_llama_sharded", "tiny_llama_f16"):
        print(f"{name}:")
        print_keys(DATA / name)

    ref32 = load(DATA / "tiny_llama")
    for name in ("tiny_llama", "tiny_llama_sharded"):
        m = ref32 if name == "tiny_llama" else load(DATA / name)
        for k, v in m.state_dict().items():
            assert torch.equal(v, sd[k]), f"{name}: {k} changed on save/load"
        write_json(DATA / name / "golden.json",
                   golden(m, dtype_loaded="float32", extra={"checkpoint_dtype": "float32"}))
    m16 = load(DATA / "tiny_llama_f16")
    for k, v in m16.state_dict().items():
        assert torch.equal(v, sd[k].half().float()), f"tiny_llama_f16: {k} is not the f16 rounding"
    write_json(DATA / "tiny_llama_f16" / "golden.json",
               golden(m16, dtype_loaded="float32", fp32_model=ref32,
                      extra={"checkpoint_dtype": "float16",
                             "note": "logits: the F16 weights upcast to fp32 and run in fp32; "
                                     "logits_fp32_model: the original fp32 weights"}))

    # ---- GGUF versions of the tiny Llama
    gdir = DATA / "tiny_llama_gguf"
    gdir.mkdir(parents=True, exist_ok=True)
    save_tokenizer(tok, gdir)
    for stem, qtype in (("tiny_llama_f32", GGMLQuantizationType.F32),
                        ("tiny_llama_q8_0", GGMLQuantizationType.Q8_0)):
        path = gdir / f"{stem}.gguf"
        write_gguf(path, sd, cfg, tok, qtype)
        m = load(gdir, gguf_file=path.name)
        check_gguf_dequant(m, sd, cfg, qtype)
        write_json(gdir / f"golden_{stem}.json",
                   golden(m, dtype_loaded="float32", fp32_model=ref32,
                          extra={"gguf_file": path.name, "sha256": sha256(path),
                                 "tensor_type": qtype.name,
                                 "note": "logits: transformers' dequantized, un-permuted load of the "
                                         "GGUF, run in fp32; logits_fp32_model: the original fp32 "
                                         "tiny_llama"}))

    # ---- GPT-2
    gcfg = gpt2_config()
    gpt2 = GPT2LMHeadModel(gcfg).eval()
    init_weights(gpt2, std=WEIGHT_STD, seed=GPT2_SEED, final_norm="transformer.ln_f")
    gsd = {k: v.detach().clone() for k, v in gpt2.state_dict().items()}
    out = DATA / "tiny_gpt2"
    out.mkdir(parents=True, exist_ok=True)
    gpt2.save_pretrained(out, safe_serialization=True)
    save_tokenizer(tok, out)
    out16 = DATA / "tiny_gpt2_f16"
    out16.mkdir(parents=True, exist_ok=True)
    g16 = GPT2LMHeadModel(gcfg)
    g16.load_state_dict(gsd)
    g16.to(torch.float16).save_pretrained(out16, safe_serialization=True)
    save_tokenizer(tok, out16)
    for name in ("tiny_gpt2", "tiny_gpt2_f16"):
        print(f"{name}:")
        print_keys(DATA / name)

    gref = load(DATA / "tiny_gpt2")
    for k, v in gref.state_dict().items():
        if k in gsd:
            assert torch.equal(v, gsd[k]), f"tiny_gpt2: {k} changed on save/load"
    write_json(DATA / "tiny_gpt2" / "golden.json",
               golden(gref, dtype_loaded="float32", extra={"checkpoint_dtype": "float32"}))
    g16l = load(DATA / "tiny_gpt2_f16")
    for k, v in g16l.state_dict().items():
        if k in gsd:
            assert torch.equal(v, gsd[k].half().float()), f"tiny_gpt2_f16: {k} is not the f16 rounding"
    write_json(DATA / "tiny_gpt2_f16" / "golden.json",
               golden(g16l, dtype_loaded="float32", fp32_model=gref,
                      extra={"checkpoint_dtype": "float16",
                             "note": "logits: the F16 weights upcast to fp32 and run in fp32; "
                                     "logits_fp32_model: the original fp32 weights"}))


if __name__ == "__main__":
    main()
