"""The Tensor: an ndarray (numpy or cupy) plus autograd state, with PyTorch's methods."""
import weakref

import numpy as np

from . import autograd, grad_mode
from . import dtype as dt
from .backend import get_array_module, is_cuda_array
from .device import CPU, as_device, device as Device
from .ops import elementwise as ew
from .ops import indexing as ix
from .ops import linalg as la
from .ops import matrix_functions as mf
from .ops import reduction as rd
from .ops import shape as sh
from .ops import sorting as so


class layout:
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"torch.{self.name}"


strided = layout("strided")


class memory_format:
    """Accepted wherever torch takes memory_format=; disttorch arrays are always C-ordered."""
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"torch.{self.name}"


contiguous_format = memory_format("contiguous_format")
channels_last = memory_format("channels_last")
channels_last_3d = memory_format("channels_last_3d")
preserve_format = memory_format("preserve_format")


class Size(tuple):
    def __repr__(self):
        return f"torch.Size({list(self)})"

    def numel(self):
        n = 1
        for s in self:
            n *= s
        return n


class _RemovableHandle:
    def __init__(self, container, item):
        self._container = weakref.ref(container) if not isinstance(container, list) else (lambda: container)
        self._item = item

    def remove(self):
        container = self._container()
        if container is not None and self._item in container:
            container.remove(self._item)


def _unwrap(x):
    return x._data if isinstance(x, Tensor) else x


class Tensor:
    # Makes `ndarray + Tensor` defer to Tensor.__radd__ instead of converting the tensor to an array.
    __array_priority__ = 1000
    __slots__ = ("_data", "requires_grad", "grad", "grad_fn", "_vc", "_base", "_accum",
                 "_post_acc_hooks", "__weakref__", "__dict__")

    def __init__(self, *args, device=None):
        """Legacy constructor: Tensor(sizes...) is uninitialised float32, Tensor(data) copies data."""
        if len(args) == 1 and not isinstance(args[0], int):
            data = args[0]
            arr = np.array(data._data if isinstance(data, Tensor) else data, dtype=np.float32)
        else:
            arr = np.zeros(tuple(args), dtype=dt.get_default_dtype().numpy)
        self._init(arr)

    def _init(self, arr):
        self._data = arr
        self.requires_grad = False
        self.grad = None
        self.grad_fn = None
        self._vc = [0]
        self._base = None
        self._accum = None
        self._post_acc_hooks = None

    @classmethod
    def _wrap(cls, arr, requires_grad=False):
        if isinstance(arr, np.generic):
            arr = np.asarray(arr)  # NumPy hands back scalars from 0-d maths; tensors always hold arrays
        t = Tensor.__new__(Tensor)
        t._data = arr
        t.requires_grad = requires_grad
        t.grad = None
        t.grad_fn = None
        t._vc = [0]
        t._base = None
        t._accum = None
        t._post_acc_hooks = None
        return t

    # ---- autograd state -------------------------------------------------------------------------
    @property
    def is_leaf(self):
        return self.grad_fn is None

    @property
    def _version(self):
        return self._vc[0]

    def _accumulator(self):
        acc = self._accum
        if acc is None:
            acc = self._accum = autograd.AccumulateGrad(self)
        return acc

    def requires_grad_(self, requires_grad=True):
        if not self.is_leaf and not requires_grad:
            raise RuntimeError(
                "you can only change requires_grad flags of leaf variables. If you want to use a computed "
                "variable in a subgraph that doesn't require differentiation use var_no_grad = var.detach().")
        if requires_grad and not self.dtype.is_floating_point:
            raise RuntimeError("only Tensors of floating point and complex dtype can require gradients")
        self.requires_grad = requires_grad
        return self

    def detach(self):
        out = Tensor._wrap(self._data)
        out._vc = self._vc
        return out

    def detach_(self):
        self.grad_fn = None
        self.requires_grad = False
        return self

    @property
    def data(self):
        return self.detach()

    @data.setter
    def data(self, value):
        self._data = value._data

    def retain_grad(self):
        if self.grad_fn is None:
            return
        self.__dict__["_retains_grad"] = True
        node = self.grad_fn
        if node._pre_hooks is None:
            node._pre_hooks = []
        node._pre_hooks.append(autograd._RetainGrad(weakref.ref(self)))

    def register_hook(self, hook):
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        node = self.grad_fn if self.grad_fn is not None else self._accumulator()
        if node._pre_hooks is None:
            node._pre_hooks = []
        node._pre_hooks.append(hook)
        return _RemovableHandle(node._pre_hooks, hook)

    def register_post_accumulate_grad_hook(self, hook):
        if self.grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        if self._post_acc_hooks is None:
            self._post_acc_hooks = []
        self._post_acc_hooks.append(hook)
        return _RemovableHandle(self._post_acc_hooks, hook)

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        from ..autograd import backward
        backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)

    # ---- metadata -----------------------------------------------------------------------------
    @property
    def shape(self):
        return Size(self._data.shape)

    def size(self, dim=None):
        if dim is None:
            return Size(self._data.shape)
        return self._data.shape[sh.normalize_dim(dim, self._data.ndim)]

    def dim(self):
        return self._data.ndim

    ndimension = dim

    @property
    def ndim(self):
        return self._data.ndim

    def numel(self):
        return int(self._data.size)

    nelement = numel

    def element_size(self):
        return self._data.itemsize

    @property
    def dtype(self):
        return dt.from_numpy(self._data.dtype)

    @property
    def device(self):
        if is_cuda_array(self._data):
            return Device("cuda", self._data.device.id)
        return CPU

    @property
    def is_cuda(self):
        return is_cuda_array(self._data)

    @property
    def retains_grad(self):
        return self.grad_fn is not None and self.__dict__.get("_retains_grad", False)

    @property
    def nbytes(self):
        return int(self._data.nbytes)

    @property
    def itemsize(self):
        return int(self._data.itemsize)

    def get_device(self):
        """The GPU index, or -1 for a CPU tensor (torch's answer)."""
        return self._data.device.id if is_cuda_array(self._data) else -1

    def share_memory_(self):
        """Accepted; disttorch tensors are not moved into shared memory (torch.multiprocessing pickles a copy)."""
        return self

    def is_shared(self):
        return False

    def pin_memory(self, device=None):
        """Page-locking only matters for GPU copies, which cupy stages itself; returns self."""
        return self

    def is_pinned(self, device=None):
        return False

    @property
    def is_cpu(self):
        return not is_cuda_array(self._data)

    # Backends and layouts disttorch has no tensors for: always False, so device checks move on.
    is_xpu = is_mps = is_meta = is_sparse = is_sparse_csr = is_quantized = is_mkldnn = is_nested = \
        is_vulkan = is_ipu = property(lambda self: False)

    @property
    def layout(self):
        return strided

    def is_floating_point(self):
        return self.dtype.is_floating_point

    def is_complex(self):
        return False

    def is_contiguous(self, memory_format=None):
        return bool(self._data.flags.c_contiguous)

    def stride(self, dim=None):
        strides = tuple(s // self._data.itemsize for s in self._data.strides)
        return strides if dim is None else strides[dim]

    def data_ptr(self):
        if is_cuda_array(self._data):
            return self._data.data.ptr
        return self._data.__array_interface__["data"][0]

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return iter(sh.unbind(self, 0))

    def __hash__(self):
        return id(self)

    def __repr__(self):
        return _format(self)

    def __format__(self, format_spec):
        """f"{loss:.4f}" formats a 0-d tensor as its Python number, as torch does."""
        if self._data.ndim == 0:
            return self.item().__format__(format_spec)
        return object.__format__(self, format_spec)

    # ---- conversion ---------------------------------------------------------------------------
    def numpy(self, force=False):
        if self.requires_grad and not force:
            raise RuntimeError(
                "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        if is_cuda_array(self._data):
            if force:
                return self._data.get()
            raise TypeError(
                f"can't convert {self.device} device type tensor to numpy. Use Tensor.cpu() to copy the "
                "tensor to host memory first.")
        return self._data

    def __array__(self, dtype=None, copy=None):
        arr = self.numpy()
        return arr if dtype is None else arr.astype(dtype)

    def item(self):
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted to Scalar")
        return self._data.reshape(-1)[0].item()

    def tolist(self):
        data = self._data.get() if is_cuda_array(self._data) else self._data
        return data.tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self._data.dtype.kind not in "iub" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with more than one value is ambiguous")
        return bool(self.item())

    def to(self, *args, **kwargs):
        device = kwargs.pop("device", None)
        dtype = kwargs.pop("dtype", None)
        copy = kwargs.pop("copy", False)
        kwargs.pop("non_blocking", None)
        kwargs.pop("memory_format", None)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, dt.dtype):
                dtype = a
            elif isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            elif isinstance(a, (str, Device, int)):
                device = a
            elif isinstance(a, bool):
                continue
            else:
                raise TypeError(f"to() received an invalid combination of arguments: {a!r}")
        out = self
        if device is not None:
            target = as_device(device)
            if target != out.device:
                out = sh.to_device(out, target)
        if dtype is not None and dtype.numpy != out._data.dtype:
            out = ew.cast(out, dtype.numpy)
        if copy and out is self:
            out = self.clone()
        return out

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to(Device("cuda", device if isinstance(device, int) else 0) if not isinstance(device, (str, Device)) else device)

    def type(self, dtype=None):
        if dtype is None:
            return {"float32": "torch.FloatTensor", "float64": "torch.DoubleTensor", "int64": "torch.LongTensor",
                    "int32": "torch.IntTensor", "bool": "torch.BoolTensor", "uint8": "torch.ByteTensor",
                    "float16": "torch.HalfTensor", "int8": "torch.CharTensor", "int16": "torch.ShortTensor"}[self.dtype.name]
        return self.to(dtype)

    def float(self):
        return self.to(dt.float32)

    def double(self):
        return self.to(dt.float64)

    def half(self):
        return self.to(dt.float16)

    def long(self):
        return self.to(dt.int64)

    def int(self):
        return self.to(dt.int32)

    def bool(self):
        return self.to(dt.bool_)

    def byte(self):
        return self.to(dt.uint8)

    def type_as(self, other):
        return self.to(other.dtype)

    def clone(self, memory_format=None):
        return ew.Cast.apply(self, self._data.dtype) if self.requires_grad else Tensor._wrap(self._data.copy())

    def contiguous(self, memory_format=None):
        return sh.contiguous(self)

    # ---- arithmetic -----------------------------------------------------------------------------
    def __add__(self, other):
        return ew.add(self, other)

    def __radd__(self, other):
        return ew.add(other, self)

    def __sub__(self, other):
        return ew.sub(self, other)

    def __rsub__(self, other):
        return ew.sub(other, self)

    def __mul__(self, other):
        return ew.mul(self, other)

    def __rmul__(self, other):
        return ew.mul(other, self)

    def __truediv__(self, other):
        return ew.div(self, other)

    def __rtruediv__(self, other):
        return ew.div(other, self)

    def __floordiv__(self, other):
        return ew.div(self, other, rounding_mode="floor")

    def __rfloordiv__(self, other):
        return ew.div(other, self, rounding_mode="floor")

    def __mod__(self, other):
        return ew.remainder(self, other)

    def __rmod__(self, other):
        return ew.remainder(other, self)

    def __pow__(self, other):
        return ew.pow(self, other)

    def __rpow__(self, other):
        return ew.pow(other, self)

    def __matmul__(self, other):
        return la.matmul(self, other)

    def __rmatmul__(self, other):
        return la.matmul(other, self)

    def __neg__(self):
        return ew.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return ew.abs(self)

    def _logical(self, other, fn, name):
        a, b = self._data, _unwrap(other)
        if a.dtype.kind == "f" or getattr(b, "dtype", np.dtype(type(b))).kind == "f":
            raise TypeError(f"{name} is only supported for integer and boolean tensors, got {self.dtype}")
        return Tensor._wrap(fn(a, b))

    def __and__(self, other):
        return self._logical(other, np.bitwise_and, "bitwise_and")

    __rand__ = __and__

    def __or__(self, other):
        return self._logical(other, np.bitwise_or, "bitwise_or")

    __ror__ = __or__

    def __xor__(self, other):
        return self._logical(other, np.bitwise_xor, "bitwise_xor")

    def __invert__(self):
        if self._data.dtype.kind == "f":
            raise TypeError("~ (bitwise_not) is only supported for integer and boolean tensors")
        return Tensor._wrap(~self._data)

    def _compare(self, other, fn):
        a, b = ew.promote_operands(self, other) if isinstance(other, Tensor) else (self, other)
        try:
            return Tensor._wrap(fn(_unwrap(a), _unwrap(b)))
        except ValueError:
            raise ew.broadcast_error(fn.__name__, self.shape, getattr(other, "shape", ())) from None

    def __eq__(self, other):
        if other is None or not isinstance(other, (Tensor, int, float, bool)):
            return False
        return self._compare(other, np.equal)

    def __ne__(self, other):
        if other is None or not isinstance(other, (Tensor, int, float, bool)):
            return True
        return self._compare(other, np.not_equal)

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__
    greater, less, greater_equal, less_equal, not_equal = gt, lt, ge, le, ne

    def equal(self, other):
        return self.shape == other.shape and bool((self._data == other._data).all())

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return bool(np.allclose(self._data, other._data, rtol=rtol, atol=atol, equal_nan=equal_nan))

    def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return Tensor._wrap(np.isclose(self._data, _unwrap(other), rtol=rtol, atol=atol, equal_nan=equal_nan))

    add = ew.add
    sub = subtract = ew.sub
    mul = multiply = ew.mul
    div = divide = true_divide = ew.div
    pow = ew.pow
    maximum = ew.maximum
    minimum = ew.minimum
    matmul = la.matmul
    mm = la.mm
    bmm = la.bmm
    dot = la.dot
    neg = negative = ew.neg
    exp = ew.exp
    log = ew.log
    sqrt = ew.sqrt
    abs = absolute = ew.abs
    sin = ew.sin
    cos = ew.cos
    tanh = ew.tanh
    sigmoid = ew.sigmoid
    relu = ew.relu
    clamp = clip = ew.clamp

    def rsqrt(self):
        return 1.0 / ew.sqrt(self)

    def reciprocal(self):
        return 1.0 / self

    def square(self):
        return self * self

    log1p = ew.log1p
    expm1 = ew.expm1
    log2 = ew.log2
    log10 = ew.log10
    sinh = ew.sinh
    cosh = ew.cosh
    atan2 = arctan2 = ew.atan2
    trunc = fix = ew.trunc
    frac = ew.frac
    floor_divide = ew.floor_divide
    remainder = ew.remainder
    fmod = ew.fmod
    lerp = ew.lerp
    clamp_min = ew.clamp_min
    clamp_max = ew.clamp_max
    nan_to_num = ew.nan_to_num
    logical_and = ew.logical_and
    logical_or = ew.logical_or
    logical_xor = ew.logical_xor
    outer = ger = la.outer
    addmm = la.addmm
    baddbmm = la.baddbmm
    det = mf.det
    inverse = mf.inv
    logdet = mf.logdet
    slogdet = mf.slogdet
    matrix_power = mf.matrix_power

    def pinverse(self, rcond=1e-15):
        return mf.pinv(self, rtol=rcond)

    def erf(self):
        from ..nn.functional import erf
        return erf(self)

    def erfinv(self):
        from ..nn.functional.activation import erfinv
        return erfinv(self)

    def bfloat16(self):
        return self.to(dt.bfloat16)

    def short(self):
        return self.to(dt.int16)

    def char(self):
        return self.to(dt.int8)

    def sign(self):
        return Tensor._wrap(np.sign(self._data))

    sgn = sign

    def floor(self):
        return Tensor._wrap(np.floor(self._data))

    def ceil(self):
        return Tensor._wrap(np.ceil(self._data))

    def round(self, decimals=0):
        return Tensor._wrap(np.round(self._data, decimals))

    def isnan(self):
        return Tensor._wrap(np.isnan(self._data))

    def isinf(self):
        return Tensor._wrap(np.isinf(self._data))

    def isfinite(self):
        return Tensor._wrap(np.isfinite(self._data))

    def logical_not(self):
        return Tensor._wrap(np.logical_not(self._data))

    def logit(self, eps=None):
        x = self if eps is None else ew.clamp(self, eps, 1 - eps)
        return ew.log(x / (1 - x))

    def argwhere(self):
        return self.nonzero()

    def sum_to_size(self, *size):
        size = sh._shape_arg(size)
        lead = self._data.ndim - len(size)
        dims = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(size) if n == 1 and self._data.shape[lead + i] != 1)
        out = rd.sum(self, dim=dims, keepdim=True) if dims else self
        return sh.reshape(out, size)

    def where(self, condition, other):
        return ew.where(condition, self, other)

    # ---- reductions ---------------------------------------------------------------------------
    sum = rd.sum
    mean = rd.mean
    prod = rd.prod
    max = rd.max
    min = rd.min
    amax = rd.amax
    amin = rd.amin
    argmax = rd.argmax
    argmin = rd.argmin
    var = rd.var
    std = rd.std
    norm = rd.norm
    logsumexp = rd.logsumexp
    softmax = rd.softmax
    log_softmax = rd.log_softmax

    def all(self, dim=None, keepdim=False):
        return Tensor._wrap(np.asarray(self._data.all(axis=dim, keepdims=keepdim)))

    def any(self, dim=None, keepdim=False):
        return Tensor._wrap(np.asarray(self._data.any(axis=dim, keepdims=keepdim)))

    def cumsum(self, dim):
        from .ops.reduction import cumsum
        return cumsum(self, dim)

    cumprod = rd.cumprod
    sort = so.sort
    argsort = so.argsort
    topk = so.topk
    kthvalue = so.kthvalue
    median = so.median
    unique = so.unique
    count_nonzero = so.count_nonzero

    def multinomial(self, num_samples, replacement=False, *, generator=None):
        from .creation import multinomial
        return multinomial(self, num_samples, replacement, generator=generator)

    def bernoulli(self, p=None, *, generator=None):
        from .creation import bernoulli
        return bernoulli(self, p, generator=generator)

    def nonzero(self, as_tuple=False):
        idx = np.nonzero(self._data)
        if as_tuple:
            return tuple(Tensor._wrap(i.astype(np.int64)) for i in idx)
        return Tensor._wrap(np.stack(idx, axis=1).astype(np.int64))

    # ---- shape --------------------------------------------------------------------------------
    reshape = sh.reshape
    view = sh.view
    flatten = sh.flatten
    unflatten = sh.unflatten
    squeeze = sh.squeeze
    unsqueeze = sh.unsqueeze
    permute = sh.permute
    transpose = swapaxes = sh.transpose
    t = sh.t
    expand = sh.expand
    expand_as = sh.expand_as
    repeat = sh.repeat
    flip = sh.flip
    chunk = sh.chunk
    split = sh.split
    unbind = sh.unbind
    narrow = sh.narrow
    unfold = sh.unfold
    tril = sh.tril
    triu = sh.triu
    roll = sh.roll
    movedim = moveaxis = sh.movedim
    tile = sh.tile
    broadcast_to = sh.broadcast_to
    diag = sh.diag
    diagonal = sh.diagonal
    trace = sh.trace

    def repeat_interleave(self, repeats, dim=None, *, output_size=None):
        """Built from index_select so the gradient flows back to each source element."""
        xp = get_array_module(self._data)
        source = self.reshape(-1) if dim is None else self
        axis = 0 if dim is None else sh.normalize_dim(dim, self._data.ndim)
        counts = _unwrap(repeats)
        positions = xp.repeat(xp.arange(source._data.shape[axis]), counts)
        return ix.index_select(source, axis, Tensor._wrap(positions.astype(np.int64)))

    def view_as(self, other):
        return sh.view(self, other.shape)

    def reshape_as(self, other):
        return sh.reshape(self, other.shape)

    @property
    def T(self):
        return sh.permute(self, tuple(reversed(range(self._data.ndim))))

    @property
    def mT(self):
        return sh.transpose(self, -2, -1)

    # ---- indexing -----------------------------------------------------------------------------
    def __getitem__(self, index):
        np_index = ix.convert_index(index)
        out = ix.GetItem.apply(self, np_index)
        return sh._as_view(out, self)

    def __setitem__(self, index, value):
        np_index = ix.convert_index(index)
        value_requires = isinstance(value, Tensor) and value.requires_grad
        try:
            if grad_mode._enabled[0] and (self.requires_grad or value_requires):
                self._check_inplace_leaf()
                if isinstance(value, Tensor) and value._data.dtype != self._data.dtype:
                    value = value.to(self.dtype)
                self._rebase(ix.IndexPut.apply(self._snapshot(), np_index, value))
            else:
                self._data[np_index] = _unwrap(value)
        except ValueError:
            self._refuse_if_read_only()
            raise RuntimeError(
                f"setitem: a value of shape {list(np.shape(_unwrap(value)))} cannot be broadcast to the indexed "
                f"region of shape {list(self._data[np_index].shape)}") from None
        self._vc[0] += 1

    gather = ix.gather
    scatter_add = ix.scatter_add
    scatter = ix.scatter
    masked_select = ix.masked_select

    def index_add(self, dim, index, source, *, alpha=1):
        return ix.index_add(self, dim, index, source, alpha)

    def index_add_(self, dim, index, source, *, alpha=1):
        return self._inplace(ix.index_add, dim, index, source, alpha)

    def index_fill(self, dim, index, value):
        return ix.index_fill(self, dim, index, value)

    def index_fill_(self, dim, index, value):
        return self._inplace(ix.index_fill, dim, index, value)

    def scatter_(self, dim, index, src=None, value=None, reduce=None):
        return self._inplace(ix.scatter, dim, index, src, value, reduce)
    index_select = ix.index_select
    masked_fill = ix.masked_fill

    def scatter_add_(self, dim, index, src):
        return self._inplace(ix.scatter_add, dim, index, src)

    def masked_fill_(self, mask, value):
        return self._inplace(ix.masked_fill, mask, value)

    # ---- in-place -----------------------------------------------------------------------------
    def _check_inplace_leaf(self):
        if self.grad_fn is None and self.requires_grad:
            raise RuntimeError(
                "a leaf Variable that requires grad is being used in an in-place operation. Wrap the update "
                "in `with torch.no_grad():` or operate on .detach().")
        root = self._root()
        if root is not self and root.grad_fn is None and root.requires_grad:
            raise RuntimeError(
                "a view of a leaf Variable that requires grad is being used in an in-place operation. Wrap "
                "the update in `with torch.no_grad():` or operate on .detach().")

    def _root(self):
        """The tensor owning the memory this (possibly nested) view looks into."""
        root = self
        while root._base is not None:
            root = root._base
        return root

    def _snapshot(self):
        """A copy of self carrying its graph position, input to the out-of-place twin of an in-place op."""
        snap = Tensor._wrap(self._data.copy(), self.requires_grad)
        snap.grad_fn = self.grad_fn
        snap._accum = self._accum
        return snap

    def _rebase(self, result):
        self._write(result._data)
        self.grad_fn = result.grad_fn
        self.requires_grad = result.requires_grad
        if self._base is not None:
            self._write_back_to_root()

    def _write_back_to_root(self):
        """The edit changed the root's memory too, so the root's history must include it."""
        root = self._root()
        if not (self.requires_grad or root.requires_grad):
            return
        positions = sh.positions_in(self._data, root._data)
        if positions is None:
            return
        previous = Tensor._wrap(root._data, root.requires_grad)
        previous.grad_fn = root.grad_fn
        previous._accum = root._accum
        written = sh.ViewWriteBack.apply(previous, self, positions)
        root.grad_fn = written.grad_fn
        root.requires_grad = written.requires_grad

    def _write(self, array):
        self._refuse_if_read_only()
        if array.dtype != self._data.dtype and not np.can_cast(array.dtype, self._data.dtype, "same_kind"):
            raise RuntimeError(
                f"result type {dt.from_numpy(array.dtype).name.capitalize()} can't be cast to the desired "
                f"output type {self.dtype.name.capitalize()}")
        try:
            self._data[...] = array
        except ValueError:
            raise _output_shape_error(self._data.shape, array.shape) from None

    def _inplace(self, fn, *args):
        recording = grad_mode._enabled[0] and (
            self.requires_grad or any(isinstance(a, Tensor) and a.requires_grad for a in args))
        if recording:
            self._check_inplace_leaf()
            self._rebase(fn(self._snapshot(), *args))
        else:
            with grad_mode.no_grad():
                self._write(fn(self, *args)._data)
        self._vc[0] += 1
        return self

    def _fast_inplace(self, ufunc, other):
        """In-place update without graph recording, straight into the buffer (optimizer hot path)."""
        try:
            ufunc(self._data, _unwrap(other), out=self._data, casting="same_kind")
        except TypeError:
            raise RuntimeError(
                f"result type {type(_unwrap(other)).__name__ if not isinstance(other, Tensor) else other.dtype} "
                f"can't be cast to the desired output type {self.dtype}") from None
        except ValueError:
            self._refuse_if_read_only()
            other_shape = tuple(getattr(other, "shape", ()))
            try:
                grown = np.broadcast_shapes(self._data.shape, other_shape)
            except ValueError:
                raise ew.broadcast_error("in-place op", self.shape, other_shape) from None
            raise _output_shape_error(self._data.shape, grown) from None
        self._vc[0] += 1
        return self

    def _refuse_if_read_only(self):
        if not getattr(self._data.flags, "writeable", True):
            raise RuntimeError(
                "unsupported operation: more than one element of the written-to tensor refers to a single "
                "memory location (it comes from expand()). Please clone() the tensor before performing the "
                "operation.")

    def _needs_graph(self, other=None):
        return grad_mode._enabled[0] and (self.requires_grad or (isinstance(other, Tensor) and other.requires_grad))

    def add_(self, other, alpha=1):
        if self._needs_graph(other):
            return self._inplace(ew.add, other, alpha)
        if alpha != 1:
            other = _unwrap(other) * alpha
        return self._fast_inplace(np.add, other)

    def sub_(self, other, alpha=1):
        if self._needs_graph(other):
            return self._inplace(ew.sub, other, alpha)
        if alpha != 1:
            other = _unwrap(other) * alpha
        return self._fast_inplace(np.subtract, other)

    def mul_(self, other):
        if self._needs_graph(other):
            return self._inplace(ew.mul, other)
        return self._fast_inplace(np.multiply, other)

    def div_(self, other):
        if self._needs_graph(other):
            return self._inplace(ew.div, other)
        return self._fast_inplace(np.true_divide, other)

    def pow_(self, exponent):
        return self._inplace(ew.pow, exponent)

    def clamp_(self, min=None, max=None):
        return self._inplace(ew.clamp, min, max)

    clip_ = clamp_

    def relu_(self):
        return self._inplace(ew.relu)

    def sigmoid_(self):
        return self._inplace(ew.sigmoid)

    def tanh_(self):
        return self._inplace(ew.tanh)

    def log_(self):
        return self._inplace(ew.log)

    def abs_(self):
        return self._inplace(ew.abs)

    def floor_(self):
        return self._inplace(lambda t: t.floor())

    def ceil_(self):
        return self._inplace(lambda t: t.ceil())

    def round_(self, decimals=0):
        return self._inplace(lambda t: t.round(decimals))

    def sign_(self):
        return self._inplace(lambda t: t.sign())

    def rsqrt_(self):
        return self._inplace(lambda t: t.rsqrt())

    def reciprocal_(self):
        return self._inplace(lambda t: t.reciprocal())

    def square_(self):
        return self._inplace(lambda t: t * t)

    def fill_diagonal_(self, fill_value, wrap=False):
        self._check_grad_free_write()
        if self._data.ndim < 2:
            raise RuntimeError("dimensions must larger than 1")
        if self._data.ndim > 2 and len(set(self._data.shape)) != 1:
            raise RuntimeError("all dimensions of input must be of equal length")
        if self._data.ndim == 2:
            get_array_module(self._data).fill_diagonal(self._data, fill_value, wrap=wrap)
        else:
            n = self._data.shape[0]
            index = get_array_module(self._data).arange(n)
            self._data[(index,) * self._data.ndim] = fill_value
        self._vc[0] += 1
        return self

    def _reshape_in_place(self, result):
        """squeeze_/unsqueeze_/t_/transpose_: self becomes the reshaped result, history included."""
        if grad_mode._enabled[0] and self.requires_grad:
            self._check_inplace_leaf()
            self.grad_fn = result.grad_fn
        self._data = result._data
        self._vc[0] += 1
        return self

    def squeeze_(self, dim=None):
        return self._reshape_in_place(sh.squeeze(self, dim))

    def unsqueeze_(self, dim):
        return self._reshape_in_place(sh.unsqueeze(self, dim))

    def t_(self):
        return self._reshape_in_place(sh.t(self))

    def transpose_(self, dim0, dim1):
        return self._reshape_in_place(sh.transpose(self, dim0, dim1))

    def tril_(self, diagonal=0):
        return self._inplace(sh.tril, diagonal)

    def triu_(self, diagonal=0):
        return self._inplace(sh.triu, diagonal)

    def clamp_min_(self, min):
        return self._inplace(ew.clamp, min, None)

    def clamp_max_(self, max):
        return self._inplace(ew.clamp, None, max)

    def sqrt_(self):
        return self._inplace(ew.sqrt)

    def exp_(self):
        return self._inplace(ew.exp)

    def neg_(self):
        return self._inplace(ew.neg)

    def addcmul_(self, tensor1, tensor2, value=1):
        return self.add_(tensor1 * tensor2 * value) if self._needs_graph() else self._fast_inplace(
            np.add, tensor1._data * tensor2._data * value)

    def addcdiv_(self, tensor1, tensor2, value=1):
        return self.add_(tensor1 / tensor2 * value) if self._needs_graph() else self._fast_inplace(
            np.add, tensor1._data / tensor2._data * value)

    def lerp_(self, end, weight):
        return self.add_((end - self) * weight)

    def zero_(self):
        return self.fill_(0)

    def fill_(self, value):
        self._check_grad_free_write()
        if grad_mode._enabled[0] and self.requires_grad:
            # The old values' history ends here: the result's gradient reaches them as zeros.
            return self._inplace(_filled, value)
        self._refuse_if_read_only()
        self._data[...] = _unwrap(value)
        self._vc[0] += 1
        return self

    def copy_(self, src, non_blocking=False):
        if self._needs_graph(src):
            return self._inplace(lambda _, s: s.to(self.dtype).to(self.device).expand(self.shape) * 1, src)
        data = src._data if isinstance(src, Tensor) else np.asarray(src)
        if get_array_module(data) is not get_array_module(self._data):
            from .backend import to_device_array
            data = to_device_array(data, self.device)
        try:
            self._data[...] = data
        except ValueError:
            raise RuntimeError(
                f"copy_: the size of src {list(np.shape(data))} must be broadcastable to self "
                f"{list(self.shape)}") from None
        self._vc[0] += 1
        return self

    def _check_grad_free_write(self):
        if grad_mode._enabled[0] and self.requires_grad:
            self._check_inplace_leaf()

    def uniform_(self, a=0.0, b=1.0, generator=None):
        from . import random
        self._check_grad_free_write()
        self._data[...] = random.uniform_array(self._data.shape, a, b, generator).astype(self._data.dtype)
        self._vc[0] += 1
        return self

    def normal_(self, mean=0.0, std=1.0, generator=None):
        from . import random
        self._check_grad_free_write()
        self._data[...] = random.normal_array(self._data.shape, mean, std, generator).astype(self._data.dtype)
        self._vc[0] += 1
        return self

    def exponential_(self, lambd=1.0, *, generator=None):
        from . import random
        self._check_grad_free_write()
        self._data[...] = random.rng(generator).exponential(1.0 / lambd, size=self._data.shape)
        self._vc[0] += 1
        return self

    def random_(self, from_=0, to=None, *, generator=None):
        """Integers in [from_, to); with one argument, [0, from_) as torch's random_(to)."""
        from . import random
        self._check_grad_free_write()
        if to is None:
            from_, to = 0, from_ if from_ else 2 ** min(self._data.dtype.itemsize * 8 - 1, 24)
        self._data[...] = random.rng(generator).integers(from_, to, size=self._data.shape)
        self._vc[0] += 1
        return self

    def bernoulli_(self, p=0.5, generator=None):
        from . import random
        self._data[...] = random.uniform_array(self._data.shape, 0.0, 1.0, generator) < p
        self._vc[0] += 1
        return self

    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self.div_(other)

    # ---- factories ----------------------------------------------------------------------------
    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
        from . import creation
        return creation.zeros(*size, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
        from . import creation
        return creation.ones(*size, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
        from . import creation
        return creation.full(size, fill_value, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False):
        return self.new_zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
        from . import creation
        return creation.tensor(data, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)


def _output_shape_error(shape, broadcast_shape):
    return RuntimeError(
        f"output with shape {list(shape)} doesn't match the broadcast shape {list(broadcast_shape)}: an in-place "
        "op cannot grow its tensor; use the out-of-place op instead")


def _filled(t, value):
    everywhere = Tensor._wrap(get_array_module(t._data).ones(t._data.shape, dtype=bool))
    return ix.masked_fill(t, everywhere, value)


def _format(t):
    data = t._data.get() if is_cuda_array(t._data) else t._data
    if t.dtype is dt.bfloat16:
        data = data.astype(np.float32)  # numpy prints ml_dtypes' bfloat16 at full float precision
    from .printing import format_body
    body = format_body(data, indent=len("tensor("))
    extras = []
    if t.device.type != "cpu":
        extras.append(f"device='{t.device}'")
    if t.dtype not in (dt.float32, dt.int64, dt.bool_) or data.size == 0:
        extras.append(f"dtype={t.dtype}")
    if t.grad_fn is not None:
        extras.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t.requires_grad:
        extras.append("requires_grad=True")
    if data.size == 0:
        body = "[]"
    return "tensor(" + ", ".join([body] + extras) + ")"


autograd.Tensor = Tensor
