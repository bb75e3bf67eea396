"""llama.cpp's intermediate tensors, read through its graph evaluation callback.

llama.cpp calls `cb_eval` (a field of the context parameters) for every node
of the graph it computes; `capture` sets it through llama-cpp-python, lets
llama.cpp evaluate a sequence in one batch, and keeps a copy of each
contiguous F32 tensor whose name it is asked for (all of them when `names` is
None), every time that name appears (llama.cpp names Q and K again after
RoPE: the first is the product's output).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import llama_cpp
import llama_cpp.llama_cpp as lc
import numpy as np
from llama_cpp import Llama

_base = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"))
_base.ggml_get_name.restype = ctypes.c_char_p
_base.ggml_get_name.argtypes = [ctypes.c_void_p]
_base.ggml_nbytes.restype = ctypes.c_size_t
_base.ggml_nbytes.argtypes = [ctypes.c_void_p]
_base.ggml_is_contiguous.restype = ctypes.c_bool
_base.ggml_is_contiguous.argtypes = [ctypes.c_void_p]
_base.ggml_backend_tensor_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]

GGML_TYPE_F32 = 0


def capture(model: Path, settings: dict, ids: list[int], names: set[str] | None = None) -> dict[str, list[np.ndarray]]:
    """{name: [each occurrence as a [len(ids), -1] array]} of one batch evaluation."""
    seen: dict[str, list[np.ndarray]] = {}

    def on_tensor(t, ask, _user):
        name = _base.ggml_get_name(t).decode()
        if ask:
            return names is None or name in names
        # struct ggml_tensor begins with its enum ggml_type
        if (names is None or name in names) and ctypes.c_int32.from_address(t).value == GGML_TYPE_F32 \
                and _base.ggml_is_contiguous(t):
            n = _base.ggml_nbytes(t) // 4
            buf = np.empty(n, dtype=np.float32)
            _base.ggml_backend_tensor_get(t, buf.ctypes.data, 0, n * 4)
            seen.setdefault(name, []).append(buf)
        return True

    callback = lc.ggml_backend_sched_eval_callback(on_tensor)
    default_params = lc.llama_context_default_params

    def params_with_callback():
        p = default_params()
        p.cb_eval = callback
        return p

    lc.llama_context_default_params = params_with_callback
    try:
        llm = Llama(str(model), **settings)
        llm.reset()
        seen.clear()  # whatever construction evaluated
        llm.eval(ids)
    finally:
        lc.llama_context_default_params = default_params
    T = len(ids)
    # the token dimension outermost; tensors of another size (the KV cache's
    # padded views) are dropped
    return {k: [a.reshape(T, -1) for a in v if a.size % T == 0] for k, v in seen.items()}
