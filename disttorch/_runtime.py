"""Process-wide runtime switches that scripts set up front: determinism, matmul precision, threads, compile.

Everything disttorch computes is already deterministic for a given seed and float32 matmuls never drop
to TF32, so the switches are recorded and read back rather than acted on.
"""
import os
import warnings

_state = {"deterministic": False, "warn_only": False, "matmul_precision": "highest", "threads": None,
          "interop_threads": None, "compile_noted": False}

_PRECISIONS = ("highest", "high", "medium")


def use_deterministic_algorithms(mode, *, warn_only=False):
    _state["deterministic"] = bool(mode)
    _state["warn_only"] = bool(warn_only)


def are_deterministic_algorithms_enabled():
    return _state["deterministic"]


def is_deterministic_algorithms_warn_only_enabled():
    return _state["warn_only"]


def set_float32_matmul_precision(precision):
    if precision not in _PRECISIONS:
        raise RuntimeError(f"Invalid float32 matmul precision {precision!r}: expected one of {', '.join(_PRECISIONS)}")
    _state["matmul_precision"] = precision


def get_float32_matmul_precision():
    return _state["matmul_precision"]


def set_num_threads(n):
    """Records the intra-op thread count; BLAS threads follow OMP_NUM_THREADS, which the launcher sets."""
    if int(n) <= 0:
        raise RuntimeError(f"set_num_threads expects a positive integer, got {n}")
    _state["threads"] = int(n)


def get_num_threads():
    if _state["threads"] is not None:
        return _state["threads"]
    return int(os.environ.get("OMP_NUM_THREADS", "1"))


def set_num_interop_threads(n):
    if int(n) <= 0:
        raise RuntimeError(f"set_num_interop_threads expects a positive integer, got {n}")
    _state["interop_threads"] = int(n)


def get_num_interop_threads():
    return _state["interop_threads"] or get_num_threads()


def compile(model=None, *, fullgraph=False, dynamic=None, backend="inductor", mode=None, options=None,
            disable=False):
    """Returns `model` unchanged: disttorch has no graph compiler, and running eagerly gives the same
    results, so a script that compiles its model keeps working. Notes this once per process."""
    if model is None:
        return lambda fn: compile(fn, fullgraph=fullgraph, dynamic=dynamic, backend=backend, mode=mode,
                                  options=options, disable=disable)
    if not disable and not _state["compile_noted"]:
        _state["compile_noted"] = True
        warnings.warn("torch.compile: disttorch runs the model eagerly (no graph compiler); the model is "
                      "returned unchanged", UserWarning, stacklevel=2)
    return model
