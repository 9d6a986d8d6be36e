"""scaled_dot_product_attention: one graph node, softmax(Q K^T * scale + mask) V with one fused backward."""
import math

import numpy as np

from ...core import creation
from ...core import dtype as dt
from ...core.autocast_state import lower_precision
from ...core.autograd import Function
from ...core.backend import get_array_module
from ...core.ops import indexing as ix
from ...core.ops._util import sum_to
from ...core.ops.reduction import max_keepdims
from .dropout import _check_p, _keep_mask


def causal_mask(query_len, key_len, device=None):
    """Boolean (L, S) mask that is True where a query may attend (keys at or before its position)."""
    return creation.tensor(np.tril(np.ones((query_len, key_len), dtype=bool)), device=device)


def apply_attention_mask(scores, attn_mask, allowed_when_true):
    """Add a float mask to the scores, or set -inf where a boolean mask forbids attention."""
    if attn_mask is None:
        return scores
    if attn_mask.dtype == dt.bool_:
        forbidden = ~attn_mask if allowed_when_true else attn_mask
        return ix.masked_fill(scores, forbidden, float("-inf"))
    return scores + attn_mask.to(scores.dtype)


def _swap_last(xp, a):
    return xp.swapaxes(a, -1, -2)


# A row whose largest weight before normalising falls below this (its scores more than ~46 below the shift)
# is recomputed with a per-row shift, so no weight loses precision to float32's subnormal range.
_SAFE_ROW_TOTAL = 1e-20


def _row_sums(xp, a):
    """a.sum(-1) as a matrix-vector product: NumPy's reduction along short contiguous rows runs a scalar loop
    several times slower than BLAS."""
    return a @ xp.ones(a.shape[-1], dtype=a.dtype)


def _scores(xp, scaled_query, key, additive_mask):
    # Q @ K^T is about twice as fast with K^T laid out contiguously (small batched GEMMs in OpenBLAS).
    scores = scaled_query @ xp.ascontiguousarray(_swap_last(xp, key))
    if additive_mask is not None:
        scores += additive_mask
    return scores


def attention_weights(xp, scaled_query, key, attn_mask, is_causal):
    """softmax(Q K^T + mask) over the last axis (Q already scaled), computed in place on the score array.

    The scores are shifted by their one global maximum rather than per-row maxima (a max over short rows costs
    as much as the matrix product); when that leaves some row's exponentials too small to trust, the scores are
    recomputed with per-row maxima. A boolean attn_mask is True where attention is allowed; a row with no
    allowed key gets all-zero weights (as PyTorch's CPU kernel gives), not NaN.
    """
    query_len, key_len = scaled_query.shape[-2], key.shape[-2]
    forbidden = None
    if is_causal:
        forbidden = xp.triu(xp.ones((query_len, key_len), dtype=bool), 1)
    elif attn_mask is not None and attn_mask.dtype == np.bool_:
        forbidden = ~attn_mask
    additive = attn_mask if forbidden is None else None
    scores = _scores(xp, scaled_query, key, additive)
    weights = _globally_shifted_softmax(xp, scores, forbidden)
    if weights is None:
        weights = _exact_softmax(xp, _scores(xp, scaled_query, key, additive), forbidden)
    return weights


def _globally_shifted_softmax(xp, scores, forbidden):
    """The softmax in place with one shift for all rows, or None where that shift does not serve (NaN or
    infinite scores, fully masked rows, rows far below the maximum)."""
    if not scores.size:
        return scores
    if scores.dtype.itemsize < 4:
        return None  # half precision underflows a few units below the shift; keep per-row maxima there
    dtype = scores.dtype.type
    shift = scores.max()
    if not xp.isfinite(shift):
        return None
    if forbidden is None:
        scores -= shift
    else:
        # The shift and the mask in one pass: -shift where allowed, -inf where forbidden.
        scores += xp.where(forbidden, dtype(-np.inf), -shift)
    xp.exp(scores, out=scores)
    totals = _row_sums(xp, scores)
    if not totals.min() >= _SAFE_ROW_TOTAL:
        return None
    scores *= (1 / totals)[..., None]
    return scores


def _exact_softmax(xp, scores, forbidden):
    """The per-row-maximum softmax, for score arrays the global shift cannot serve (NaN, infinities, rows far
    below the maximum, fully masked rows)."""
    if forbidden is not None:
        xp.copyto(scores, scores.dtype.type(-np.inf), where=forbidden)
    row_max = max_keepdims(scores, scores.ndim - 1)
    row_max[row_max == -np.inf] = 0  # fully masked row: exp(-inf) = 0 everywhere, normalised below
    scores -= row_max
    xp.exp(scores, out=scores)
    totals = scores.sum(axis=-1, keepdims=True)
    totals[totals == 0] = 1
    scores /= totals
    return scores


class ScaledDotProductAttention(Function):
    @staticmethod
    def forward(ctx, query, key, value, attn_mask, dropout_p, is_causal, scale):
        xp = get_array_module(query)
        if attn_mask is not None and attn_mask.dtype != np.bool_ and attn_mask.dtype != query.dtype:
            attn_mask = attn_mask.astype(query.dtype)
        # The scale goes onto Q (half the elements of the scores).
        scaled_query = query * query.dtype.type(scale)
        weights = attention_weights(xp, scaled_query, key, attn_mask, is_causal)
        dropped = weights
        keep = None
        if dropout_p > 0.0:
            keep = _keep_mask(weights, weights.shape, dropout_p)
            dropped = weights * keep
        # Saved: the inputs (views the caller keeps anyway) and the weights, not the scaled Q or the output: memory
        # held until backward is memory the next step's forward pays page faults for.
        ctx.save_for_backward(query, key, value, weights, keep)
        ctx.scale = scale
        ctx.mask_shape = None if attn_mask is None else attn_mask.shape
        return dropped @ value

    @staticmethod
    def backward(ctx, grad):
        query, key, value, weights, keep = ctx.saved_tensors
        need_q, need_k, need_v, need_mask = ctx.needs_input_grad[:4]
        xp = get_array_module(grad)
        grad_v = None
        if need_v:
            dropped = weights if keep is None else weights * keep
            grad_v = sum_to(_swap_last(xp, dropped) @ grad, value.shape)
        # Softmax backward in place on d(weights): w * (dw - sum_j w dw).
        grad_scores = grad @ xp.ascontiguousarray(_swap_last(xp, value))
        if keep is not None:
            grad_scores *= keep
        grad_scores -= xp.einsum("...j,...j->...", grad_scores, weights)[..., None]
        grad_scores *= weights
        grad_mask = sum_to(grad_scores, ctx.mask_shape) if need_mask else None
        grad_scores *= grad_scores.dtype.type(ctx.scale)
        grad_q = sum_to(grad_scores @ key, query.shape) if need_q else None
        grad_k = sum_to(_swap_last(xp, grad_scores) @ query, key.shape) if need_k else None
        return grad_q, grad_k, grad_v, grad_mask, None, None, None


@lower_precision
def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """softmax(Q K^T * scale + mask) V over the last two dims; a boolean attn_mask is True where attention is
    allowed."""
    if query.dim() >= 4 and query.shape[-3] != key.shape[-3]:
        raise RuntimeError(f"scaled_dot_product_attention: query has {query.shape[-3]} heads but key has "
                           f"{key.shape[-3]}; grouped-query attention (enable_gqa) is not supported, repeat the "
                           "key/value heads first")
    if is_causal and attn_mask is not None:
        raise RuntimeError("scaled_dot_product_attention: pass either attn_mask or is_causal=True, not both")
    _check_p(dropout_p)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    return ScaledDotProductAttention.apply(query, key, value, attn_mask, dropout_p, bool(is_causal), scale)
