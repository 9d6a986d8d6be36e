"""Indexing ops: __getitem__/__setitem__, gather, scatter_add, index_select, masked_fill, one_hot."""
import numpy as np

from .. import autograd
from ..autograd import Function
from ..backend import get_array_module
from ._util import normalize_dim, sum_to


def _is_advanced(index):
    return any(isinstance(i, (list,)) or hasattr(i, "dtype") for i in index)


def convert_index(index):
    """Turn a user index (ints, slices, None, Ellipsis, tensors, lists) into a NumPy index tuple."""
    Tensor = autograd.Tensor
    if not isinstance(index, tuple):
        index = (index,)
    out = []
    for i in index:
        if isinstance(i, Tensor):
            arr = i._data
            if arr.dtype.kind not in "biu":
                raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
            out.append(arr)
        elif isinstance(i, (list, tuple)):
            out.append(np.asarray([j._data if isinstance(j, Tensor) else j for j in i]))
        else:
            out.append(i)
    return tuple(out)


class GetItem(Function):
    @staticmethod
    def forward(ctx, x, index):
        ctx.meta = (x.shape, x.dtype, index)
        return x[index]

    @staticmethod
    def backward(ctx, g):
        shape, dtype, index = ctx.meta
        if not _is_advanced(index):
            return autograd.SliceGrad(shape, dtype, index, g), None
        xp = get_array_module(g)
        grad = xp.zeros(shape, dtype=dtype)
        xp.add.at(grad, index, g)  # repeated indices must add up, which plain assignment would not do
        return grad, None


class IndexPut(Function):
    """Out-of-place `x[index] = value`; Tensor.__setitem__ writes the result back in place."""

    @staticmethod
    def forward(ctx, x, index, value):
        out = x.copy()
        out[index] = value
        ctx.meta = (index, getattr(value, "shape", ()))
        return out

    @staticmethod
    def backward(ctx, g):
        index, value_shape = ctx.meta
        gx = None
        if ctx.needs_input_grad[0]:
            gx = g.copy()
            gx[index] = 0
        gv = sum_to(g[index], value_shape) if ctx.needs_input_grad[2] else None
        return gx, None, gv


def _along_axis(index, axis):
    """Full advanced-index tuple addressing index[i, j, ...] along `axis` and i, j, ... elsewhere."""
    xp = get_array_module(index)
    grids = list(xp.indices(index.shape, sparse=True))
    grids[axis] = index
    return tuple(grids)


class Gather(Function):
    @staticmethod
    def forward(ctx, x, axis, index):
        full = _along_axis(index, axis)
        ctx.meta = (x.shape, full)
        return x[full]

    @staticmethod
    def backward(ctx, g):
        shape, full = ctx.meta
        xp = get_array_module(g)
        grad = xp.zeros(shape, dtype=g.dtype)
        xp.add.at(grad, full, g)
        return grad, None, None


class ScatterAdd(Function):
    @staticmethod
    def forward(ctx, x, axis, index, src):
        full = _along_axis(index, axis)
        # Only the leading index.shape block of src takes part, as in PyTorch.
        region = tuple(slice(0, n) for n in index.shape)
        ctx.meta = (full, region, src.shape)
        out = x.copy()
        get_array_module(x).add.at(out, full, src[region])
        return out

    @staticmethod
    def backward(ctx, g):
        need_x, _, _, need_src = ctx.needs_input_grad
        full, region, src_shape = ctx.meta
        gsrc = None
        if need_src:
            gsrc = get_array_module(g).zeros(src_shape, dtype=g.dtype)
            gsrc[region] = g[full]
        return (g if need_x else None), None, None, gsrc


class IndexSelect(Function):
    @staticmethod
    def forward(ctx, x, axis, index):
        ctx.meta = (x.shape, axis, index)
        return get_array_module(x).take(x, index, axis=axis)

    @staticmethod
    def backward(ctx, g):
        shape, axis, index = ctx.meta
        xp = get_array_module(g)
        grad = xp.zeros(shape, dtype=g.dtype)
        moved = xp.moveaxis(grad, axis, 0)
        xp.add.at(moved, index, xp.moveaxis(g, axis, 0))
        return grad, None, None


def _check_index_tensor(op, index, x, axis):
    Tensor = autograd.Tensor
    if not isinstance(index, Tensor) or index._data.dtype != np.int64:
        got = index.dtype if isinstance(index, Tensor) else type(index).__name__
        raise RuntimeError(f"{op}(): Expected dtype int64 for index, got {got}")
    if index._data.ndim != x._data.ndim:
        raise RuntimeError(
            f"Index tensor must have the same number of dimensions as input tensor "
            f"({index._data.ndim} vs {x._data.ndim})")
    for d, (i, s) in enumerate(zip(index._data.shape, x._data.shape)):
        if d != axis and i > s:
            raise RuntimeError(
                f"Size does not match at dimension {d} expected index {list(index.shape)} to be no larger than "
                f"self {list(x.shape)} apart from dimension {axis}")


def gather(x, dim, index):
    axis = normalize_dim(dim, x._data.ndim)
    _check_index_tensor("gather", index, x, axis)
    return Gather.apply(x, axis, index._data)


def scatter_add(x, dim, index, src):
    axis = normalize_dim(dim, x._data.ndim)
    _check_index_tensor("scatter_add", index, x, axis)
    return ScatterAdd.apply(x, axis, index._data, src)


def index_select(x, dim, index):
    axis = normalize_dim(dim, x._data.ndim)
    return IndexSelect.apply(x, axis, index._data)


def masked_fill(x, mask, value):
    from .elementwise import where
    Tensor = autograd.Tensor
    if mask._data.dtype != np.bool_:
        raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype {mask.dtype}")
    if isinstance(value, Tensor):
        value = value.to(x.dtype)
    else:
        value = Tensor._wrap(get_array_module(x._data).asarray(value, dtype=x._data.dtype))
    return where(mask, value, x)


def one_hot(tensor, num_classes=-1):
    Tensor = autograd.Tensor
    labels = tensor._data
    if labels.dtype != np.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if num_classes == -1:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise RuntimeError(f"Class values must be smaller than num_classes ({num_classes}) and non-negative.")
    xp = get_array_module(labels)
    return Tensor._wrap((labels[..., None] == xp.arange(num_classes)).astype(np.int64))


class Scatter(Function):
    """Writes src (or a scalar) at index along axis; overwritten input elements get no gradient."""

    @staticmethod
    def forward(ctx, x, axis, index, src):
        full = _along_axis(index, axis)
        region = tuple(slice(0, n) for n in index.shape)
        is_array = hasattr(src, "shape")
        ctx.meta = (full, region, src.shape if is_array else None)
        out = x.copy()
        out[full] = src[region] if is_array else src
        return out

    @staticmethod
    def backward(ctx, g):
        need_x, _, _, need_src = ctx.needs_input_grad
        full, region, src_shape = ctx.meta
        gx = gsrc = None
        if need_x:
            gx = g.copy()
            gx[full] = 0
        if need_src:
            gsrc = get_array_module(g).zeros(src_shape, dtype=g.dtype)
            gsrc[region] = g[full]
        return gx, None, None, gsrc


def scatter(x, dim, index, src=None, value=None, reduce=None):
    if reduce is not None:
        raise NotImplementedError("scatter(reduce=...) is not supported; use scatter_add or scatter_reduce-free code")
    if src is None:
        src = value
    axis = normalize_dim(dim, x._data.ndim)
    _check_index_tensor("scatter", index, x, axis)
    Tensor = autograd.Tensor
    if isinstance(src, Tensor) and src._data.dtype != x._data.dtype:
        src = src.to(x.dtype)
    return Scatter.apply(x, axis, index._data, src)


def masked_select(x, mask):
    if mask._data.dtype != np.bool_:
        raise RuntimeError(f"masked_select: expected BoolTensor for mask, got {mask.dtype}")
    if mask._data.shape != x._data.shape:
        shape = np.broadcast_shapes(mask._data.shape, x._data.shape)
        x, mask = x.expand(*shape), mask.expand(*shape)
    return x[mask]


class IndexAdd(Function):
    """out = x; out[..., index[i], ...] += alpha * src[..., i, ...] along axis (repeated indices add up)."""

    @staticmethod
    def forward(ctx, x, axis, index, src, alpha):
        xp = get_array_module(x)
        ctx.meta = (axis, index, alpha)
        out = x.copy()
        xp.add.at(xp.moveaxis(out, axis, 0), index, xp.moveaxis(src * alpha if alpha != 1 else src, axis, 0))
        return out

    @staticmethod
    def backward(ctx, g):
        axis, index, alpha = ctx.meta
        need_x, _, _, need_src, _ = ctx.needs_input_grad
        gsrc = None
        if need_src:
            gsrc = get_array_module(g).take(g, index, axis=axis)
            if alpha != 1:
                gsrc = gsrc * alpha
        return (g if need_x else None), None, None, gsrc, None


def index_add(x, dim, index, source, alpha=1):
    axis = normalize_dim(dim, x._data.ndim)
    if index._data.ndim > 1:
        raise IndexError("index_add_(): Index is supposed to be a vector")
    Tensor = autograd.Tensor
    if isinstance(source, Tensor) and source._data.dtype != x._data.dtype:
        source = source.to(x.dtype)
    return IndexAdd.apply(x, axis, index._data.reshape(-1), source, alpha)


def index_fill(x, dim, index, value):
    """masked_fill with a mask marking the indexed slices, so the gradient skips the filled elements."""
    axis = normalize_dim(dim, x._data.ndim)
    xp = get_array_module(x._data)
    chosen = xp.zeros(x._data.shape[axis], dtype=bool)
    chosen[index._data.reshape(-1)] = True
    shape = [1] * x._data.ndim
    shape[axis] = -1
    return masked_fill(x, autograd.Tensor._wrap(chosen.reshape(shape)), value)
