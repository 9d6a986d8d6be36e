"""scaled_dot_product_attention, composed from matmul, masking and softmax (their nodes carry the backward)."""
import math

import numpy as np

from ...core import creation
from ...core import dtype as dt
from ...core.ops import indexing as ix
from ...core.ops import linalg as la
from ...core.ops import reduction as rd
from .dropout import dropout


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


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """softmax(Q K^T * scale + mask) V over the last two dims; a boolean attn_mask is True where attention is
    allowed."""
    if query.dim() >= 4 and query.shape[-3] != key.shape[-3]:
        raise RuntimeError(f"scaled_dot_product_attention: query has {query.shape[-3]} heads but key has "
                           f"{key.shape[-3]}; grouped-query attention (enable_gqa) is not supported, repeat the "
                           "key/value heads first")
    query_len, key_len = query.shape[-2], key.shape[-2]
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = la.matmul(query, key.transpose(-2, -1)) * scale
    if is_causal:
        if attn_mask is not None:
            raise RuntimeError("scaled_dot_product_attention: pass either attn_mask or is_causal=True, not both")
        scores = apply_attention_mask(scores, causal_mask(query_len, key_len, query.device), True)
    scores = apply_attention_mask(scores, attn_mask, True)
    weights = rd.softmax(scores, -1)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p)
    return la.matmul(weights, value)
