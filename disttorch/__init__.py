"""disttorch: a PyTorch-shaped deep-learning framework on numpy/cupy with ZeroMQ data parallelism.

`import disttorch as torch` and ordinary PyTorch code runs.
"""
import importlib as _importlib

from .core.heap import keep_freed_heap as _keep_freed_heap

_keep_freed_heap()
from .core import creation as _creation
from .core import random as _random
from .core.creation import (  # noqa: F401
    arange, as_tensor, bernoulli, empty, empty_like, eye, from_numpy, full, full_like, linspace, logspace,
    multinomial, normal, ones, ones_like, rand, rand_like, randint, randint_like, randn, randn_like, randperm,
    tensor, tril_indices, triu_indices, zeros, zeros_like,
)
from ._runtime import (  # noqa: F401
    are_deterministic_algorithms_enabled, compile, get_float32_matmul_precision, get_num_interop_threads,
    get_num_threads, is_deterministic_algorithms_warn_only_enabled, set_float32_matmul_precision,
    set_num_interop_threads, set_num_threads, use_deterministic_algorithms,
)
from .core.device import device, get_default_device, set_default_device  # noqa: F401
from .core.dtype import (  # noqa: F401
    bfloat16, bool_ as bool, dtype, float16, float32, float64, get_default_dtype, int8, int16, int32, int64,
    set_default_dtype, uint8,
)
from .core.grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled  # noqa: F401
from .core.ops.elementwise import (  # noqa: F401
    abs, add, atan2, clamp, clamp_max, clamp_min, cos, cosh, div, exp, expm1, floor_divide, fmod, frac, lerp, log,
    log1p, log2, log10, logical_and, logical_or, logical_xor, maximum, minimum, mul, nan_to_num, neg, pow, relu,
    remainder, sigmoid, sin, sinh, sqrt, sub, tanh, trunc, where,
)
from .core.ops.indexing import (  # noqa: F401
    gather, index_add, index_fill, index_select, masked_fill, masked_select, scatter, scatter_add,
)
from .core.ops.linalg import addmm, baddbmm, bmm, dot, einsum, matmul, mm, outer, tensordot  # noqa: F401
from .core.ops.matrix_functions import det, logdet, matrix_power, slogdet  # noqa: F401
from .core.ops.matrix_functions import inv as inverse  # noqa: F401
from .core.ops.reduction import (  # noqa: F401
    amax, amin, argmax, argmin, cumprod, cumsum, log_softmax, logsumexp, max, mean, min, norm, prod, softmax,
    std, std_mean, sum, var, var_mean,
)
from .core.ops.shape import (  # noqa: F401
    broadcast_tensors, broadcast_to, cat, chunk, diag, diagonal, flatten, flip, hstack, meshgrid, movedim,
    narrow, permute, reshape, roll, split, squeeze, stack, tile, trace, transpose, tril, triu, unbind, unsqueeze,
    vstack,
)
from .core.ops.sorting import argsort, count_nonzero, kthvalue, median, sort, topk, unique  # noqa: F401
from .core.random import Generator, get_rng_state, initial_seed, manual_seed, seed, set_rng_state  # noqa: F401
from .core.tensor import (  # noqa: F401
    Size, Tensor, channels_last, channels_last_3d, contiguous_format, layout, memory_format, preserve_format,
    strided,
)

from .core.out_arg import with_out as _with_out  # noqa: E402

# torch functions that take out=; Tensor methods never do, so only the module-level names are wrapped.
for _name in ("add", "sub", "mul", "div", "pow", "matmul", "mm", "bmm", "cat", "stack", "sum", "mean", "prod",
              "exp", "log", "log1p", "expm1", "sqrt", "abs", "neg", "clamp", "maximum", "minimum", "where",
              "sigmoid", "tanh", "max", "min", "amax", "amin", "argmax", "argmin", "cumsum", "cumprod", "sort",
              "topk", "tril", "triu", "einsum", "outer", "addmm", "gather", "remainder", "floor_divide", "lerp",
              "zeros", "ones", "empty", "full", "arange", "linspace", "rand", "randn", "randint", "randperm", "eye"):
    globals()[_name] = _with_out(globals()[_name])
del _name

float = float32
double = float64
half = float16
long = int64
int = int32
short = int16

clip = clamp
fix = trunc
moveaxis = movedim
swapaxes = swapdims = transpose
ger = outer
concat = concatenate = cat
multiply = mul
subtract = sub
divide = true_divide = div
negative = neg
absolute = abs
default_generator = _random.default_generator

__version__ = "0.1.0"

_SUBMODULES = {"nn", "optim", "utils", "distributed", "cuda", "autograd", "vision", "jit", "onnx", "linalg",
               "quantization", "futures", "backends", "accelerator", "cpu", "xpu", "multiprocessing", "amp",
               "serialization", "profiler", "special"}
# torch code reaches quantization as torch.ao.quantization; the names below live in subpackages.
_ALIASES = {"ao": "quantization"}
_FROM_SUBMODULE = {"qint8": "quantization", "quint8": "quantization", "autocast": "amp"}


def __getattr__(name):
    # Subpackages load on first use, so `import disttorch` stays quick for launcher workers.
    if name in _SUBMODULES:
        return _importlib.import_module(f"{__name__}.{name}")
    if name in _ALIASES:
        return _AoNamespace(_importlib.import_module(f"{__name__}.{_ALIASES[name]}"))
    if name in _FROM_SUBMODULE:
        return getattr(_importlib.import_module(f"{__name__}.{_FROM_SUBMODULE[name]}"), name)
    if name in ("save", "load"):
        return getattr(_importlib.import_module(f"{__name__}.serialization"), name)
    raise AttributeError(f"module 'disttorch' has no attribute '{name}'")


class _AoNamespace:
    """torch.ao: `torch.ao.quantization` is our `disttorch.quantization`."""

    def __init__(self, quantization):
        self.quantization = quantization


def is_tensor(obj):
    return isinstance(obj, Tensor)


def numel(input):
    return input.numel()


def clone(input):
    return input.clone()


def t(input):
    return input.t()


def square(input):
    return input * input


def rsqrt(input):
    return input.rsqrt()


def isnan(input):
    return input.isnan()


def isinf(input):
    return input.isinf()


def isfinite(input):
    return input.isfinite()


def all(input, dim=None, keepdim=False):
    return input.all(dim, keepdim)


def any(input, dim=None, keepdim=False):
    return input.any(dim, keepdim)


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    return input.allclose(other, rtol, atol, equal_nan)


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    return input.isclose(other, rtol, atol, equal_nan)


def equal(input, other):
    return input.equal(other)


def eq(input, other):
    return input == other


def ne(input, other):
    return input != other


def gt(input, other):
    return input > other


def lt(input, other):
    return input < other


def ge(input, other):
    return input >= other


def le(input, other):
    return input <= other


def sign(input):
    return input.sign()


def floor(input):
    return input.floor()


def round(input, decimals=0):
    return input.round(decimals)


def nonzero(input, as_tuple=False):
    return input.nonzero(as_tuple)


def expand_copy(input, *sizes):
    return input.expand(*sizes).clone()


def repeat_interleave(input, repeats, dim=None, *, output_size=None):
    return input.repeat_interleave(repeats, dim, output_size=output_size)


def one_hot(tensor, num_classes=-1):
    from .core.ops.indexing import one_hot as _one_hot
    return _one_hot(tensor, num_classes)


sgn = sign


def is_autocast_enabled(device_type=None):
    from .amp.autocast_mode import is_autocast_enabled as _enabled
    return _enabled(device_type)


def get_autocast_dtype(device_type):
    from .amp.autocast_mode import get_autocast_dtype as _dtype
    return _dtype(device_type)


def erf(input):
    from .nn.functional import erf as _erf
    return _erf(input)


def pinverse(input, rcond=1e-15):
    return input.pinverse(rcond)


def erfinv(input):
    return input.erfinv()


def ceil(input):
    return input.ceil()


def reciprocal(input):
    return input.reciprocal()


def logical_not(input):
    return input.logical_not()


def logit(input, eps=None):
    return input.logit(eps)


def argwhere(input):
    return input.argwhere()


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None, sci_mode=None):
    from .core.printing import set_printoptions as _set
    _set(precision, threshold, edgeitems, linewidth, profile, sci_mode)


def get_printoptions():
    from .core.printing import get_printoptions as _get
    return _get()


def is_floating_point(input):
    return input.is_floating_point()


def is_complex(input):
    return False


def is_nonzero(input):
    if input.numel() != 1:
        raise RuntimeError(f"Boolean value of Tensor with {'no values' if input.numel() == 0 else 'more than one value'} is ambiguous")
    return bool(input.item())


def finfo(type=None):
    from .core.numeric_info import finfo as _finfo
    return _finfo(type)


def iinfo(type):
    from .core.numeric_info import iinfo as _iinfo
    return _iinfo(type)
