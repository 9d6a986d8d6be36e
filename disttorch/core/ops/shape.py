"""Shape and data-movement ops: views, permutations, expand, cat/stack, repeat, pad, flip, devices."""
import math

import numpy as np

from .. import autograd
from .. import dtype as dt
from ..autograd import Function
from ..backend import get_array_module, to_device_array
from ._util import normalize_dim, sum_to


class Reshape(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.in_shape), None


class View(Function):
    """Like Reshape, but refuses to copy: the result must alias the input's memory."""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        try:
            if isinstance(x, np.ndarray):
                return x.reshape(shape, copy=False)  # the method skips np.reshape's dispatch layers
            return get_array_module(x).reshape(x, shape, copy=False)
        except ValueError:
            raise RuntimeError(
                f"view size is not compatible with input tensor's size and stride (input shape "
                f"{list(x.shape)}, requested {list(shape)}): at least one dimension spans across two "
                "contiguous subspaces. Use .reshape(...) instead."
            ) from None

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.in_shape), None


class Permute(Function):
    @staticmethod
    def forward(ctx, x, dims):
        ctx.inverse = tuple(sorted(range(len(dims)), key=dims.__getitem__))
        return x.transpose(dims)

    @staticmethod
    def backward(ctx, g):
        return g.transpose(ctx.inverse), None


class Expand(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return get_array_module(x).broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, g):
        return sum_to(g, ctx.in_shape), None


class Contiguous(Function):
    @staticmethod
    def forward(ctx, x):
        return get_array_module(x).ascontiguousarray(x)

    @staticmethod
    def backward(ctx, g):
        return g


class Cat(Function):
    @staticmethod
    def forward(ctx, axis, *xs):
        ctx.axis = axis
        ctx.sizes = [x.shape[axis] for x in xs]
        return get_array_module(xs[0]).concatenate(xs, axis=axis)

    @staticmethod
    def backward(ctx, g):
        bounds = np.cumsum(ctx.sizes)[:-1]
        parts = get_array_module(g).split(g, bounds, axis=ctx.axis)
        return (None,) + tuple(p if need else None for p, need in zip(parts, ctx.needs_input_grad[1:]))


class Repeat(Function):
    @staticmethod
    def forward(ctx, x, reps):
        lead = len(reps) - x.ndim
        shaped = x.reshape((1,) * lead + x.shape)
        ctx.meta = (x.shape, shaped.shape, reps)
        return get_array_module(x).tile(shaped, reps)

    @staticmethod
    def backward(ctx, g):
        in_shape, shaped, reps = ctx.meta
        # Split each axis into (repeat, size) and sum the repeat axes away.
        split = []
        for r, s in zip(reps, shaped):
            split += [r, s]
        summed = g.reshape(split).sum(axis=tuple(range(0, 2 * len(reps), 2)))
        return summed.reshape(in_shape), None


class Pad(Function):
    @staticmethod
    def forward(ctx, x, widths, value):
        ctx.slices = tuple(slice(lo, lo + n) for (lo, _), n in zip(widths, x.shape))
        return get_array_module(x).pad(x, widths, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx, g):
        return g[ctx.slices], None, None


class Flip(Function):
    @staticmethod
    def forward(ctx, x, axes):
        ctx.axes = axes
        return get_array_module(x).flip(x, axis=axes)

    @staticmethod
    def backward(ctx, g):
        return get_array_module(g).flip(g, axis=ctx.axes), None


class ToDevice(Function):
    @staticmethod
    def forward(ctx, x, device):
        from ..device import CPU, device as make_device
        from ..backend import array_device_index
        index = array_device_index(x)
        ctx.source = CPU if index is None else make_device("cuda", index)
        return to_device_array(x, device)

    @staticmethod
    def backward(ctx, g):
        return to_device_array(g, ctx.source), None


class ViewWriteBack(Function):
    """The root of a view after an in-place edit through the view (PyTorch's CopySlices).

    The write already happened in shared memory; this node routes the gradient of the overwritten
    positions to the view's new history and the rest to the root's previous history.
    """

    @staticmethod
    def forward(ctx, root, view, positions):
        ctx.positions = positions
        return root

    @staticmethod
    def backward(ctx, g):
        need_root, need_view, _ = ctx.needs_input_grad
        positions = ctx.positions
        g_view = g.reshape(-1)[positions] if need_view else None
        g_root = None
        if need_root:
            g_root = g.copy()
            g_root.reshape(-1)[positions] = 0
        return g_root, g_view, None


def _data_ptr(arr):
    return arr.__array_interface__["data"][0] if isinstance(arr, np.ndarray) else arr.data.ptr


def _element_offsets(arr, origin):
    """Memory offset of every element of `arr`, counted in elements from the address `origin`."""
    xp = get_array_module(arr)
    item = arr.itemsize
    offsets = xp.full(arr.shape, (_data_ptr(arr) - origin) // item, dtype=xp.int64)
    for axis, (n, stride) in enumerate(zip(arr.shape, arr.strides)):
        steps = xp.arange(n, dtype=xp.int64) * (stride // item)
        offsets = offsets + steps.reshape((1,) * axis + (n,) + (1,) * (arr.ndim - axis - 1))
    return offsets


def positions_in(view, root):
    """Flat (C-order) indices into `root` of each element of `view`; None when `view` is not in its memory."""
    if view.dtype != root.dtype or view.size == 0 or root.size == 0:
        return None
    xp = get_array_module(root)
    origin = _data_ptr(root)
    view_offsets = _element_offsets(view, origin)
    if root.flags.c_contiguous:
        # Memory order is the flat index order, so offsets are the positions.
        inside = bool(((view_offsets >= 0) & (view_offsets < root.size)).all())
        return view_offsets if inside else None
    root_offsets = _element_offsets(root, origin).reshape(-1)
    order = xp.argsort(root_offsets)
    sorted_offsets = root_offsets[order]
    slot = xp.clip(xp.searchsorted(sorted_offsets, view_offsets), 0, root_offsets.size - 1)
    if not bool((sorted_offsets[slot] == view_offsets).all()):
        return None
    return order[slot]


def _as_view(result, base):
    """Views share the base's version counter so in-place edits through either are seen."""
    data = result._data
    # A reshape that had to copy still has a .base (its own fresh buffer), so check the memory itself.
    if data is base._data or (data.base is not None and get_array_module(data).may_share_memory(data, base._data)):
        result._vc = base._vc
        result._base = base
    return result


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def _infer_shape(x, shape):
    shape = tuple(int(s) for s in shape)
    numel = x._data.size
    if shape.count(-1) > 1:
        raise RuntimeError("only one dimension can be inferred")
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
        shape = tuple(numel // known if s == -1 else s for s in shape)
    elif math.prod(shape) != numel:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return shape


def reshape(x, *shape):
    return _as_view(Reshape.apply(x, _infer_shape(x, _shape_arg(shape))), x)


def view(x, *shape):
    if len(shape) == 1 and isinstance(shape[0], dt.dtype):
        return _as_view(x._wrap(x._data.view(shape[0].numpy)), x)
    return _as_view(View.apply(x, _infer_shape(x, _shape_arg(shape))), x)


def flatten(x, start_dim=0, end_dim=-1):
    nd = x._data.ndim
    if nd == 0:
        return reshape(x, 1)
    s = normalize_dim(start_dim, nd)
    e = normalize_dim(end_dim, nd)
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    shape = x._data.shape
    return reshape(x, shape[:s] + (int(np.prod(shape[s:e + 1])),) + shape[e + 1:])


def unflatten(x, dim, sizes):
    d = normalize_dim(dim, x._data.ndim)
    shape = x._data.shape
    return reshape(x, shape[:d] + tuple(sizes) + shape[d + 1:])


def squeeze(x, dim=None):
    shape = x._data.shape
    if dim is None:
        new = tuple(s for s in shape if s != 1)
    else:
        dims = dim if isinstance(dim, (tuple, list)) else (dim,)
        dims = {normalize_dim(d, len(shape)) for d in dims}
        new = tuple(s for i, s in enumerate(shape) if not (i in dims and s == 1))
    return reshape(x, new)


def unsqueeze(x, dim):
    nd = x._data.ndim
    if not -nd - 1 <= dim <= nd:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-nd - 1}, {nd}], but got {dim})")
    d = dim % (nd + 1)
    shape = x._data.shape
    return reshape(x, shape[:d] + (1,) + shape[d:])


def permute(x, *dims):
    dims = _shape_arg(dims)
    nd = x._data.ndim
    if len(dims) != nd:
        raise RuntimeError(
            f"permute(sparse_coo): number of dimensions in the tensor input does not match the length of the "
            f"desired ordering of dimensions i.e. input.dim() = {nd} is not equal to len(dims) = {len(dims)}"
        )
    dims = tuple(normalize_dim(d, nd) for d in dims)
    if len(set(dims)) != nd:
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    return _as_view(Permute.apply(x, dims), x)


def transpose(x, dim0, dim1):
    nd = x._data.ndim
    if nd == 0:
        return x
    order = list(range(nd))
    a, b = normalize_dim(dim0, nd), normalize_dim(dim1, nd)
    order[a], order[b] = order[b], order[a]
    return _as_view(Permute.apply(x, tuple(order)), x)


def t(x):
    if x._data.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {x._data.ndim}D")
    return transpose(x, 0, 1) if x._data.ndim == 2 else x


def expand(x, *sizes):
    sizes = _shape_arg(sizes)
    shape = x._data.shape
    if len(sizes) < len(shape):
        raise RuntimeError(
            f"expand: the number of sizes provided ({len(sizes)}) must be greater or equal to the number of "
            f"dimensions in the tensor ({len(shape)})"
        )
    lead = len(sizes) - len(shape)
    target = tuple(shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(sizes))
    for i, s in enumerate(shape):
        if s != 1 and s != target[i + lead]:
            raise RuntimeError(
                f"The expanded size of the tensor ({target[i + lead]}) must match the existing size ({s}) at "
                f"non-singleton dimension {i + lead}.  Target sizes: {list(sizes)}.  Tensor sizes: {list(shape)}"
            )
    return _as_view(Expand.apply(x, target), x)


def expand_as(x, other):
    return expand(x, other.shape)


def contiguous(x):
    if x._data.flags.c_contiguous:
        return x
    return Contiguous.apply(x)


def _promote_all(tensors):
    target = dt.from_numpy(tensors[0]._data.dtype)
    for t_ in tensors[1:]:
        target = dt.promote(target, dt.from_numpy(t_._data.dtype))
    return [t_ if t_._data.dtype == target.numpy else t_.to(target) for t_ in tensors]


def cat(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
    # PyTorch skips 1-d empty tensors, a legacy allowance that code relies on.
    tensors = [t_ for t_ in tensors if not (t_._data.ndim == 1 and t_._data.shape[0] == 0)] or tensors[:1]
    ref = tensors[0]._data
    if ref.ndim == 0:
        raise RuntimeError("zero-dimensional tensor (at position 0) cannot be concatenated")
    axis = normalize_dim(dim, ref.ndim)
    for i, t_ in enumerate(tensors[1:], 1):
        s = t_._data.shape
        if len(s) != ref.ndim:
            raise RuntimeError(
                f"Tensors must have same number of dimensions: got {ref.ndim} and {len(s)}")
        for d in range(ref.ndim):
            if d != axis and s[d] != ref.shape[d]:
                raise RuntimeError(
                    f"Sizes of tensors must match except in dimension {axis}. Expected size {ref.shape[d]} "
                    f"but got size {s[d]} for tensor number {i} in the list."
                )
    return Cat.apply(axis, *_promote_all(tensors))


def stack(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    first = tensors[0]._data.shape
    for i, t_ in enumerate(tensors[1:], 1):
        if t_._data.shape != first:
            raise RuntimeError(
                f"stack expects each tensor to be equal size, but got {list(first)} at entry 0 and "
                f"{list(t_._data.shape)} at entry {i}"
            )
    nd = len(first) + 1
    if not -nd <= dim < nd:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-nd}, {nd - 1}], but got {dim})")
    return cat([unsqueeze(t_, dim % nd) for t_ in tensors], dim % nd)


def repeat(x, *reps):
    reps = _shape_arg(reps)
    if len(reps) < x._data.ndim:
        raise RuntimeError(
            "Number of dimensions of repeat dims can not be smaller than number of dimensions of tensor")
    return Repeat.apply(x, reps)


def pad(x, pad, mode="constant", value=None):
    if len(pad) % 2 or len(pad) // 2 > x._data.ndim:
        raise RuntimeError(f"Padding length must be divisible by 2 and at most twice the number of dims; got {len(pad)}")
    if mode != "constant":
        raise NotImplementedError(f"pad mode '{mode}' is not supported yet; use mode='constant'")
    widths = [(0, 0)] * x._data.ndim
    for i in range(len(pad) // 2):
        widths[x._data.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    if any(lo < 0 or hi < 0 for lo, hi in widths):
        raise NotImplementedError("negative padding (cropping) is not supported; slice the tensor instead")
    return Pad.apply(x, tuple(widths), 0 if value is None else value)


def flip(x, dims):
    dims = dims if isinstance(dims, (tuple, list)) else (dims,)
    return Flip.apply(x, tuple(normalize_dim(d, x._data.ndim) for d in dims))


def to_device(x, device):
    return ToDevice.apply(x, device)


def chunk(x, chunks, dim=0):
    axis = normalize_dim(dim, x._data.ndim)
    size = x._data.shape[axis]
    step = -(-size // chunks) if size else 1
    return split(x, step, axis)


def split(x, split_size_or_sections, dim=0):
    axis = normalize_dim(dim, x._data.ndim)
    size = x._data.shape[axis]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        bounds = [(s, min(s + step, size)) for s in range(0, size, step)] or [(0, 0)]
    else:
        sections = list(split_size_or_sections)
        if sum(sections) != size:
            raise RuntimeError(
                f"split_with_sizes expects split_sizes to sum exactly to {size} (input tensor's size at "
                f"dimension {axis}), but got split_sizes={sections}")
        starts = np.cumsum([0] + sections[:-1])
        bounds = [(int(s), int(s) + n) for s, n in zip(starts, sections)]
    prefix = (slice(None),) * axis
    return tuple(x[prefix + (slice(lo, hi),)] for lo, hi in bounds)


def unbind(x, dim=0):
    axis = normalize_dim(dim, x._data.ndim)
    prefix = (slice(None),) * axis
    return tuple(x[prefix + (i,)] for i in range(x._data.shape[axis]))


class Triangle(Function):
    """tril/triu: keep one triangle of the last two dims; the gradient keeps the same triangle."""

    @staticmethod
    def forward(ctx, x, diagonal, lower):
        ctx.meta = (diagonal, lower)
        xp = get_array_module(x)
        return xp.tril(x, diagonal) if lower else xp.triu(x, diagonal)

    @staticmethod
    def backward(ctx, g):
        diagonal, lower = ctx.meta
        xp = get_array_module(g)
        return (xp.tril(g, diagonal) if lower else xp.triu(g, diagonal)), None, None


class Roll(Function):
    @staticmethod
    def forward(ctx, x, shifts, axes):
        ctx.meta = (shifts, axes)
        return get_array_module(x).roll(x, shifts, axis=axes)

    @staticmethod
    def backward(ctx, g):
        shifts, axes = ctx.meta
        back = tuple(-s for s in shifts) if isinstance(shifts, tuple) else -shifts
        return get_array_module(g).roll(g, back, axis=axes), None, None


class Diagonal(Function):
    @staticmethod
    def forward(ctx, x, offset, axis1, axis2):
        ctx.meta = (x.shape, offset, axis1, axis2)
        return get_array_module(x).diagonal(x, offset, axis1, axis2).copy()

    @staticmethod
    def backward(ctx, g):
        shape, offset, axis1, axis2 = ctx.meta
        xp = get_array_module(g)
        grad = xp.zeros(shape, dtype=g.dtype)
        # diagonal() of a writeable array is read-only in numpy, so write through explicit indices.
        n = g.shape[-1]
        rows = xp.arange(n) + max(-offset, 0)
        cols = xp.arange(n) + max(offset, 0)
        moved = xp.moveaxis(grad, (axis1, axis2), (-2, -1))
        moved[..., rows, cols] = g
        return grad, None, None, None


def _check_matrix(op, x):
    if x._data.ndim < 2:
        raise RuntimeError(f"{op}: input tensor must have at least 2 dimensions.")


def tril(x, diagonal=0):
    _check_matrix("tril", x)
    return Triangle.apply(x, int(diagonal), True)


def triu(x, diagonal=0):
    _check_matrix("triu", x)
    return Triangle.apply(x, int(diagonal), False)


def narrow(x, dim, start, length):
    axis = normalize_dim(dim, x._data.ndim)
    size = x._data.shape[axis]
    start = int(start)
    if start < 0:
        start += size
    if not 0 <= start <= size or length < 0 or start + length > size:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({size}).")
    return x[(slice(None),) * axis + (slice(start, start + length),)]


class Unfold(Function):
    """Tensor.unfold: windows of `size` every `step` along `axis`, as a new last dim."""

    @staticmethod
    def forward(ctx, x, axis, size, step):
        xp = get_array_module(x)
        ctx.geometry = (x.shape, axis, size, step)
        windows = xp.lib.stride_tricks.sliding_window_view(x, size, axis=axis)
        return xp.ascontiguousarray(windows[(slice(None),) * axis + (slice(None, None, step),)])

    @staticmethod
    def backward(ctx, g):
        shape, axis, size, step = ctx.geometry
        xp = get_array_module(g)
        grad = xp.zeros(shape, dtype=g.dtype)
        count = g.shape[axis]
        # Overlapping windows (step < size) add up: one strided add per position within the window.
        for offset in range(size):
            target = (slice(None),) * axis + (slice(offset, offset + (count - 1) * step + 1, step),)
            grad[target] += g[..., offset]
        return grad, None, None, None


def unfold(x, dimension, size, step):
    axis = normalize_dim(dimension, max(x._data.ndim, 1))
    length = x._data.shape[axis] if x._data.ndim else 1
    if size > length:
        raise RuntimeError(f"maximum size for tensor at dimension {axis} is {length} but size is {size}")
    if step <= 0:
        raise RuntimeError(f"step is {step} but must be > 0")
    if x._data.ndim == 0:
        return x.reshape(1)  # a scalar is one window of one element, as in PyTorch
    return Unfold.apply(x, axis, int(size), int(step))


def roll(x, shifts, dims=None):
    if dims is None:
        return reshape(Roll.apply(flatten(x), int(shifts) if not isinstance(shifts, (tuple, list)) else int(shifts[0]), 0),
                       x._data.shape)
    if isinstance(dims, (tuple, list)):
        if not isinstance(shifts, (tuple, list)) or len(shifts) != len(dims):
            raise RuntimeError(f"shifts and dimensions must align. shifts: {shifts}, dims: {dims}")
        axes = tuple(normalize_dim(d, x._data.ndim) for d in dims)
        return Roll.apply(x, tuple(int(s) for s in shifts), axes)
    shift = shifts[0] if isinstance(shifts, (tuple, list)) else shifts
    return Roll.apply(x, int(shift), normalize_dim(dims, x._data.ndim))


def movedim(x, source, destination):
    nd = x._data.ndim
    src = [normalize_dim(d, nd) for d in (source if isinstance(source, (tuple, list)) else (source,))]
    dst = [normalize_dim(d, nd) for d in (destination if isinstance(destination, (tuple, list)) else (destination,))]
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({src} dims) should contain the "
                           f"same number of dims as destination ({dst} dims)")
    rest = iter(d for d in range(nd) if d not in src)
    placed = dict(zip(dst, src))
    return permute(x, tuple(placed[i] if i in placed else next(rest) for i in range(nd)))


def tile(x, dims):
    dims = tuple(dims)
    if len(dims) < x._data.ndim:
        dims = (1,) * (x._data.ndim - len(dims)) + dims
    return repeat(x, *dims)


def broadcast_to(x, shape):
    return expand(x, *shape)


def broadcast_tensors(*tensors):
    shape = np.broadcast_shapes(*(t._data.shape for t in tensors))
    return tuple(expand(t, *shape) for t in tensors)


def hstack(tensors):
    return cat(tensors, 0 if tensors[0]._data.ndim == 1 else 1)


def vstack(tensors):
    return cat([t if t._data.ndim >= 2 else reshape(t, 1, -1) for t in tensors], 0)


def meshgrid(*tensors, indexing="ij"):
    if len(tensors) == 1 and isinstance(tensors[0], (tuple, list)):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f"torch.meshgrid: indexing must be one of \"xy\" or \"ij\", but received: {indexing}")
    sizes = [t._data.size for t in tensors]
    if indexing == "xy" and len(tensors) >= 2:
        sizes[0], sizes[1] = sizes[1], sizes[0]
    out = []
    for i, t in enumerate(tensors):
        position = i if indexing == "ij" or len(tensors) < 2 else (1 - i if i < 2 else i)
        shape = [1] * len(tensors)
        shape[position] = t._data.size
        out.append(expand(reshape(t, *shape), *sizes))
    return tuple(out)


def diagonal(x, offset=0, dim1=0, dim2=1):
    nd = x._data.ndim
    return Diagonal.apply(x, int(offset), normalize_dim(dim1, nd), normalize_dim(dim2, nd))


def diag(x, diagonal=0):
    """A 1-D input becomes a square matrix with it on the `diagonal`; a 2-D input gives that diagonal."""
    if x._data.ndim == 2:
        return Diagonal.apply(x, int(diagonal), 0, 1)
    if x._data.ndim != 1:
        raise RuntimeError("diag(): Supports 1D or 2D tensors. Got " f"{x._data.ndim}D")
    n = x._data.shape[0] + abs(diagonal)
    xp = get_array_module(x._data)
    rows = xp.arange(x._data.shape[0]) + max(-diagonal, 0)
    cols = xp.arange(x._data.shape[0]) + max(diagonal, 0)
    flat_positions = autograd.Tensor._wrap((rows * n + cols).astype(np.int64))
    from .indexing import scatter_add
    zeros = autograd.Tensor._wrap(xp.zeros(n * n, dtype=x._data.dtype))
    return reshape(scatter_add(zeros, 0, flat_positions, x), n, n)


def trace(x):
    if x._data.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {x._data.ndim}")
    from .reduction import sum as sum_
    return sum_(Diagonal.apply(x, 0, 0, 1))
