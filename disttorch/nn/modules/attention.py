"""MultiheadAttention with PyTorch's parameters (in_proj_weight, in_proj_bias, out_proj) and call signature."""
import math

from ...core import creation
from ...core import dtype as dt
from ...core.ops import reduction as rd
from ...core.ops import shape as sh
from .. import functional as F
from .. import init
from ..functional.attention import apply_attention_mask, causal_mask
from ..parameter import Parameter
from .linear import Linear
from .module import Module

__all__ = ["MultiheadAttention", "NonDynamicallyQuantizableLinear"]


class NonDynamicallyQuantizableLinear(Linear):
    """A Linear under the name PyTorch gives MultiheadAttention.out_proj (it shows in the repr)."""


class MultiheadAttention(Module):
    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False, device=None, dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"embed_dim and num_heads must be greater than 0, got embed_dim={embed_dim} and "
                             f"num_heads={num_heads} instead")
        if embed_dim % num_heads:
            raise AssertionError("embed_dim must be divisible by num_heads")
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        factory = {"device": device, "dtype": dtype}
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(creation.empty(3 * embed_dim, embed_dim, **factory))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = Parameter(creation.empty(embed_dim, embed_dim, **factory))
            self.k_proj_weight = Parameter(creation.empty(embed_dim, self.kdim, **factory))
            self.v_proj_weight = Parameter(creation.empty(embed_dim, self.vdim, **factory))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(creation.empty(3 * embed_dim, **factory))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias, **factory)
        if add_bias_kv:
            self.bias_k = Parameter(creation.empty(1, 1, embed_dim, **factory))
            self.bias_v = Parameter(creation.empty(1, 1, embed_dim, **factory))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self):
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for weight in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def _projection_weights(self):
        if self._qkv_same_embed_dim:
            weights = sh.chunk(self.in_proj_weight, 3)
        else:
            weights = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        biases = sh.chunk(self.in_proj_bias, 3) if self.in_proj_bias is not None else (None,) * 3
        return weights, biases

    def _split_heads(self, x):
        batch, length, _ = x.shape
        return x.reshape(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        batched = query.dim() == 3
        if not batched:
            query, key, value = (t.unsqueeze(0) for t in (query, key, value))
            key_padding_mask = None if key_padding_mask is None else key_padding_mask.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        (wq, wk, wv), (bq, bk, bv) = self._projection_weights()
        q, k, v = F.linear(query, wq, bq), F.linear(key, wk, bk), F.linear(value, wv, bv)
        k, v, attn_mask, key_padding_mask = self._extend_keys(k, v, attn_mask, key_padding_mask)
        q, k, v = self._split_heads(q), self._split_heads(k), self._split_heads(v)
        dropout_p = self.dropout if self.training else 0.0
        if need_weights:
            # The weights are returned (and differentiable), so the graph keeps them as a node of their own.
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
            scores = self._mask_scores(scores, attn_mask, key_padding_mask, is_causal)
            weights = rd.softmax(scores, -1)
            if dropout_p > 0.0:
                weights = F.dropout(weights, dropout_p)
            out = weights @ v
        else:
            causal_only = is_causal and attn_mask is None and key_padding_mask is None
            mask = None if causal_only else self._sdpa_mask(q, k, attn_mask, key_padding_mask, is_causal)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=causal_only)
        out = out.transpose(1, 2).reshape(q.shape[0], q.shape[2], self.embed_dim)
        out = self.out_proj(out)
        if not batched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(dim=1)
        return out, (weights if batched else weights.squeeze(0))

    def _extend_keys(self, k, v, attn_mask, key_padding_mask):
        """Append the learned bias_k/bias_v and/or a zero key/value, widening the masks to match."""
        extra = []
        if self.bias_k is not None:
            batch = k.shape[0]
            extra.append((self.bias_k.expand(batch, 1, self.embed_dim), self.bias_v.expand(batch, 1, self.embed_dim)))
        if self.add_zero_attn:
            zeros = creation.zeros(k.shape[0], 1, self.embed_dim, dtype=k.dtype, device=k.device)
            extra.append((zeros, zeros))
        for extra_k, extra_v in extra:
            k = sh.cat([k, extra_k], dim=1)
            v = sh.cat([v, extra_v], dim=1)
            attn_mask = None if attn_mask is None else sh.pad(attn_mask, (0, 1))
            key_padding_mask = None if key_padding_mask is None else sh.pad(key_padding_mask, (0, 1))
        return k, v, attn_mask, key_padding_mask

    def _sdpa_mask(self, q, k, attn_mask, key_padding_mask, is_causal):
        """attn_mask and key_padding_mask (True = do not attend, or additive) as one scaled_dot_product_attention
        mask (True = may attend, or additive), shaped to broadcast against (batch, heads, L, S)."""
        batch, heads, query_len, key_len = q.shape[0], q.shape[1], q.shape[2], k.shape[2]
        if is_causal and attn_mask is None:
            attn_mask = ~causal_mask(query_len, key_len, q.device)
        masks = []
        if attn_mask is not None:
            masks.append(attn_mask.reshape(batch, heads, query_len, key_len) if attn_mask.dim() == 3 else attn_mask)
        if key_padding_mask is not None:
            masks.append(key_padding_mask.reshape(batch, 1, 1, key_len))
        if not masks:
            return None
        if all(m.dtype == dt.bool_ for m in masks):
            forbidden = masks[0] if len(masks) == 1 else masks[0] | masks[1]
            return ~forbidden
        additive = creation.zeros(batch, heads, query_len, key_len, dtype=q.dtype, device=q.device)
        for mask in masks:
            additive = apply_attention_mask(additive, mask, allowed_when_true=False)
        return additive

    def _mask_scores(self, scores, attn_mask, key_padding_mask, is_causal):
        batch, heads, query_len, key_len = scores.shape
        if is_causal and attn_mask is None:
            attn_mask = ~causal_mask(query_len, key_len, scores.device)
        if attn_mask is not None:
            if attn_mask.dim() == 3:
                attn_mask = attn_mask.reshape(batch, heads, query_len, key_len)
            # For MultiheadAttention a True entry in a boolean mask means "do not attend".
            scores = apply_attention_mask(scores, attn_mask, allowed_when_true=False)
        if key_padding_mask is not None:
            scores = apply_attention_mask(scores, key_padding_mask.reshape(batch, 1, 1, key_len),
                                          allowed_when_true=False)
        return scores
