"""embedding: a row lookup whose backward sums the gradient rows of each looked-up index."""
import numpy as np

from ...core.autograd import Function
from ...core.backend import get_array_module
from ...core.grad_mode import no_grad


class Embedding(Function):
    @staticmethod
    def forward(ctx, weight, indices, padding_idx, scale_grad_by_freq):
        ctx.save_for_backward(indices)
        ctx.weight_shape = weight.shape
        ctx.options = (padding_idx, scale_grad_by_freq)
        return weight[indices]

    @staticmethod
    def backward(ctx, grad):
        (indices,) = ctx.saved_tensors
        padding_idx, scale_grad_by_freq = ctx.options
        xp = get_array_module(grad)
        flat_idx = indices.reshape(-1)
        rows = grad.reshape(-1, ctx.weight_shape[1])
        if scale_grad_by_freq:
            counts = xp.bincount(flat_idx, minlength=ctx.weight_shape[0])
            rows = rows / counts[flat_idx][:, None].astype(rows.dtype)
        grad_weight = xp.zeros(ctx.weight_shape, dtype=grad.dtype)
        _scatter_add_rows(xp, grad_weight, flat_idx, rows)
        if padding_idx is not None:
            grad_weight[padding_idx] = 0
        return grad_weight, None, None, None


def _scatter_add_rows(xp, target, flat_idx, rows):
    """target[i] += sum of rows[k] over k with flat_idx[k] == i.

    NumPy's add.at takes milliseconds for a few hundred rows; sorting the indices and summing each run of
    equal ones with add.reduceat is ~25x faster and adds each index's rows in the same (occurrence) order.
    """
    if xp is not np:
        xp.add.at(target, flat_idx, rows)
        return
    if flat_idx.size == 0:
        return
    order = np.argsort(flat_idx, kind="stable")
    sorted_idx = flat_idx[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_idx[1:] != sorted_idx[:-1])))
    target[sorted_idx[starts]] += np.add.reduceat(rows[order], starts, axis=0)


def _renorm_rows(weight, indices, max_norm, norm_type):
    """Rescale (in place, without grad) the looked-up rows whose norm exceeds max_norm."""
    xp = get_array_module(weight._data)
    rows = xp.unique(indices._data.reshape(-1))
    with no_grad():
        selected = weight._data[rows]
        norms = (xp.abs(selected) ** norm_type).sum(axis=1) ** (1.0 / norm_type)
        scale = xp.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0).astype(selected.dtype)
        weight._data[rows] = selected * scale[:, None]
        weight._vc[0] += 1


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    if input._data.dtype.kind not in "iu":
        raise RuntimeError(f"Expected tensor for argument #1 'indices' to have one of the following scalar types: "
                           f"Long, Int; but got {input.type()} instead (while checking arguments for embedding)")
    num_embeddings = weight.shape[0]
    if padding_idx is not None:
        if not -num_embeddings <= padding_idx < num_embeddings:
            raise AssertionError("Padding_idx must be within num_embeddings")
        padding_idx %= num_embeddings
    if input.numel():
        low, high = int(input._data.min()), int(input._data.max())
        if low < 0 or high >= num_embeddings:
            bad = high if high >= num_embeddings else low
            raise IndexError(f"index out of range in self: index {bad} is outside [0, {num_embeddings}) for an "
                             f"Embedding with num_embeddings={num_embeddings}")
    if max_norm is not None:
        _renorm_rows(weight, input, max_norm, norm_type)
    return Embedding.apply(weight, input._data, padding_idx, scale_grad_by_freq)
