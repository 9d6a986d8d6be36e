"""The one table of op samples: each row drives a forward/backward comparison with PyTorch and a float64
finite-difference gradient check (tests/core/test_op_table.py). Adding an op adds one row here.

A row's `fn(lib, *inputs)` is written once and runs against both `disttorch` and `torch`, so it may only
use names the two share. Inputs are specs: a shape tuple is a random float64 tensor that requires grad,
`Positive(shape)` keeps values away from 0 (log, sqrt, pow bases), `Const(array)` is a tensor that does
not require grad (indices, masks), `Scalar(v)` is passed as a Python number.
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Positive:
    shape: tuple


@dataclass(frozen=True)
class Const:
    array: np.ndarray


@dataclass(frozen=True)
class Scalar:
    value: object


@dataclass(frozen=True)
class OpSample:
    name: str
    fn: object
    inputs: tuple


def pad(lib):
    """disttorch keeps pad in its core; torch only has it in nn.functional."""
    functional = getattr(getattr(lib, "nn", None), "functional", None)
    if functional is not None and hasattr(functional, "pad"):
        return functional.pad
    from disttorch.core.ops.shape import pad as core_pad
    return core_pad


def _weighted_cat(lib, parts, dim):
    """Joins the pieces of split/chunk/unbind with distinct weights so each piece's gradient is checked."""
    return lib.cat([p * (i + 1) for i, p in enumerate(parts)], dim)


def _setitem_slice(lib, x, v):
    y = x * 1
    y[1:3, 1:] = v * 2
    return y


def _setitem_mask(lib, x, mask):
    y = x * 1
    y[mask] = 0.0
    return y


def _setitem_int_array(lib, x, v, index):
    y = x.clone()
    y[index] = v
    return y


MASK = np.array([[True, False, True, False], [False, False, True, True], [True, True, False, False]])
DUP_INDEX = np.array([0, 2, 0, 1, 2], dtype=np.int64)
GATHER_INDEX = np.array([[0, 2, 2], [1, 0, 1], [3, 3, 0]], dtype=np.int64)
SCATTER_INDEX = np.array([[0, 1, 0, 2], [2, 2, 1, 0]], dtype=np.int64)
PERMUTATION_INDEX = np.array([[2, 0, 1], [1, 2, 0]], dtype=np.int64)
WITH_ZERO = np.array([[1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0]])


def _well_conditioned(lib, a):
    return a + 3 * lib.eye(a.shape[-1], dtype=lib.float64)


def _spd(lib, a):
    return a @ a.mT + a.shape[-1] * lib.eye(a.shape[-1], dtype=lib.float64)


def _qr(lib, a, mode="reduced"):
    q, r = lib.linalg.qr(a, mode=mode)
    return lib.cat([q.flatten(), 2 * r.flatten()])


def _eigh(lib, a, uplo="L"):
    values, vectors = lib.linalg.eigh(a + a.mT, UPLO=uplo)
    # Squared entries: an eigenvector's sign is arbitrary, so only sign-blind functions of it are defined.
    return lib.cat([values.flatten(), (vectors * vectors).flatten()])


def _svd(lib, a, full_matrices=False):
    u, s, vh = lib.linalg.svd(a, full_matrices=full_matrices)
    k = s.shape[-1]
    u, vh = u[..., :k], vh[..., :k, :]
    return lib.cat([s.flatten(), (u * u).flatten(), 2 * (vh * vh).flatten()])


def _slogdet(lib, a):
    sign, logabsdet = lib.linalg.slogdet(a)
    return sign * logabsdet


def _std_mean(lib, a):
    std, mean = lib.std_mean(a, dim=1)
    return std + 2 * mean


def _meshgrid(lib, a, b, indexing):
    x, y = lib.meshgrid(a, b, indexing=indexing)
    return x + 2 * y

SAMPLES = [
    # arithmetic, tensor-tensor with and without broadcasting, and with Python scalars
    OpSample("add", lambda lib, a, b: a + b, ((3, 4), (3, 4))),
    OpSample("add_broadcast", lambda lib, a, b: a + b, ((2, 3, 4), (3, 1))),
    OpSample("add_alpha", lambda lib, a, b: lib.add(a, b, alpha=2.5), ((3, 4), (4,))),
    OpSample("add_scalar", lambda lib, a: 1.5 + a, ((3, 4),)),
    OpSample("sub_broadcast", lambda lib, a, b: a - b, ((4, 1), (1, 3))),
    OpSample("rsub_scalar", lambda lib, a: 2.0 - a, ((5,),)),
    OpSample("mul_broadcast", lambda lib, a, b: a * b, ((2, 3), (2, 1))),
    OpSample("mul_scalar", lambda lib, a: a * 3, ((2, 3),)),
    OpSample("div_broadcast", lambda lib, a, b: a / b, ((3, 4), Positive((4,)))),
    OpSample("rdiv_scalar", lambda lib, a: 2.0 / a, (Positive((3, 2)),)),
    OpSample("pow_tensor", lambda lib, a, b: a ** b, (Positive((3, 4)), (3, 4))),
    OpSample("pow_scalar_exponent", lambda lib, a: a ** 3, ((3, 4),)),
    OpSample("pow_scalar_base", lambda lib, a: 1.7 ** a, ((3, 4),)),
    OpSample("pow_fractional", lambda lib, a: lib.pow(a, 0.5), (Positive((6,)),)),
    OpSample("neg", lambda lib, a: -a, ((3, 4),)),
    # unary math
    OpSample("exp", lambda lib, a: lib.exp(a), ((3, 4),)),
    OpSample("log", lambda lib, a: a.log(), (Positive((3, 4)),)),
    OpSample("sqrt", lambda lib, a: lib.sqrt(a), (Positive((3, 4)),)),
    OpSample("abs", lambda lib, a: a.abs(), ((3, 4),)),
    OpSample("sin", lambda lib, a: lib.sin(a), ((3, 4),)),
    OpSample("cos", lambda lib, a: a.cos(), ((3, 4),)),
    OpSample("tanh", lambda lib, a: lib.tanh(a), ((3, 4),)),
    OpSample("sigmoid", lambda lib, a: a.sigmoid(), ((3, 4),)),
    OpSample("relu", lambda lib, a: lib.relu(a), ((3, 4),)),
    OpSample("clamp", lambda lib, a: a.clamp(-0.5, 0.5), ((4, 5),)),
    OpSample("clamp_min_only", lambda lib, a: lib.clamp(a, min=0.1), ((4, 5),)),
    OpSample("clamp_tensor_bounds", lambda lib, a, lo: a.clamp(min=lo), ((3, 4), (4,))),
    OpSample("maximum", lambda lib, a, b: lib.maximum(a, b), ((3, 4), (4,))),
    OpSample("minimum", lambda lib, a, b: lib.minimum(a, b), ((3, 1), (3, 4))),
    OpSample("where", lambda lib, a, b, m: lib.where(m, a, b), ((3, 4), (4,), Const(MASK))),
    # reductions
    OpSample("sum_all", lambda lib, a: a.sum(), ((3, 4),)),
    OpSample("sum_dim", lambda lib, a: a.sum(dim=1), ((2, 3, 4),)),
    OpSample("sum_dims_keepdim", lambda lib, a: a.sum(dim=(0, 2), keepdim=True), ((2, 3, 4),)),
    OpSample("mean_all", lambda lib, a: a.mean(), ((3, 4),)),
    OpSample("mean_dim_keepdim", lambda lib, a: lib.mean(a, dim=-1, keepdim=True), ((3, 4),)),
    OpSample("prod_all", lambda lib, a: a.prod(), ((2, 3),)),
    OpSample("prod_dim", lambda lib, a: a.prod(dim=1), ((3, 4),)),
    OpSample("prod_dim_keepdim", lambda lib, a: lib.prod(a, 0, keepdim=True), ((3, 4),)),
    OpSample("max_all", lambda lib, a: a.max(), ((3, 4),)),
    OpSample("max_dim", lambda lib, a: a.max(dim=1).values, ((3, 4),)),
    OpSample("max_dim_keepdim", lambda lib, a: lib.max(a, 0, keepdim=True)[0], ((3, 4),)),
    OpSample("min_all", lambda lib, a: lib.min(a), ((3, 4),)),
    OpSample("min_dim", lambda lib, a: a.min(dim=-1).values, ((3, 4),)),
    OpSample("amax", lambda lib, a: a.amax(dim=(0, 2)), ((2, 3, 4),)),
    OpSample("amax_keepdim", lambda lib, a: lib.amax(a, dim=1, keepdim=True), ((3, 4),)),
    OpSample("amin", lambda lib, a: lib.amin(a, dim=0), ((3, 4),)),
    OpSample("var_all", lambda lib, a: a.var(), ((3, 4),)),
    OpSample("var_dim_keepdim", lambda lib, a: a.var(dim=1, keepdim=True), ((3, 4),)),
    OpSample("var_biased", lambda lib, a: lib.var(a, dim=0, unbiased=False), ((3, 4),)),
    OpSample("std_all", lambda lib, a: a.std(), ((3, 4),)),
    OpSample("std_dim", lambda lib, a: lib.std(a, dim=-1), ((3, 4),)),
    OpSample("norm_all", lambda lib, a: a.norm(), ((3, 4),)),
    OpSample("norm_dim", lambda lib, a: a.norm(dim=1), ((3, 4),)),
    OpSample("norm_p1_keepdim", lambda lib, a: a.norm(p=1, dim=0, keepdim=True), ((3, 4),)),
    OpSample("norm_p3", lambda lib, a: lib.norm(a, p=3), ((3, 4),)),
    OpSample("logsumexp", lambda lib, a: lib.logsumexp(a, dim=1), ((3, 4),)),
    OpSample("logsumexp_keepdim", lambda lib, a: a.logsumexp(dim=(0, 1), keepdim=True), ((2, 3, 2),)),
    OpSample("softmax", lambda lib, a: lib.softmax(a, dim=1), ((3, 4),)),
    OpSample("softmax_dim0", lambda lib, a: a.softmax(0), ((3, 4),)),
    OpSample("log_softmax", lambda lib, a: lib.log_softmax(a, dim=-1), ((3, 4),)),
    OpSample("cumsum", lambda lib, a: lib.cumsum(a, dim=1), ((3, 4),)),
    OpSample("cumsum_dim0", lambda lib, a: a.cumsum(0), ((3, 4),)),
    # matrix products
    OpSample("matmul_2d", lambda lib, a, b: a @ b, ((3, 4), (4, 2))),
    OpSample("matmul_1d_1d", lambda lib, a, b: lib.matmul(a, b), ((4,), (4,))),
    OpSample("matmul_1d_2d", lambda lib, a, b: a @ b, ((4,), (4, 3))),
    OpSample("matmul_2d_1d", lambda lib, a, b: a @ b, ((3, 4), (4,))),
    OpSample("matmul_batched", lambda lib, a, b: a @ b, ((2, 3, 4), (2, 4, 2))),
    OpSample("matmul_batch_broadcast", lambda lib, a, b: a @ b, ((2, 1, 3, 4), (3, 4, 2))),
    OpSample("matmul_batch_by_matrix", lambda lib, a, b: lib.matmul(a, b), ((2, 3, 4), (4, 2))),
    OpSample("matmul_matrix_by_batch", lambda lib, a, b: lib.matmul(a, b), ((3, 4), (2, 4, 2))),
    OpSample("mm", lambda lib, a, b: lib.mm(a, b), ((3, 4), (4, 2))),
    OpSample("bmm", lambda lib, a, b: lib.bmm(a, b), ((2, 3, 4), (2, 4, 2))),
    OpSample("dot", lambda lib, a, b: lib.dot(a, b), ((5,), (5,))),
    # shape and data movement
    OpSample("reshape", lambda lib, a: a.reshape(4, -1) * 2, ((2, 3, 2),)),
    OpSample("view", lambda lib, a: a.view(6, 2) * 2, ((3, 4),)),
    OpSample("flatten", lambda lib, a: a.flatten(1) * 2, ((2, 3, 2),)),
    OpSample("squeeze", lambda lib, a: a.squeeze(1) * 2, ((3, 1, 2),)),
    OpSample("squeeze_all", lambda lib, a: lib.squeeze(a) * 2, ((1, 3, 1, 2),)),
    OpSample("unsqueeze", lambda lib, a, b: a.unsqueeze(-1) * b, ((3, 4), (2,))),
    OpSample("permute", lambda lib, a: a.permute(2, 0, 1) * lib.arange(4.0), ((3, 4, 2),)),
    OpSample("transpose", lambda lib, a, b: a.transpose(0, 1) @ b, ((3, 4), (3, 2))),
    OpSample("t", lambda lib, a, b: a.t() * b, ((3, 4), (4, 1))),
    OpSample("T", lambda lib, a, b: a.T * b, ((3, 4), (4, 1))),
    OpSample("expand", lambda lib, a, b: a.expand(3, 4) * b, ((3, 1), (3, 4))),
    OpSample("expand_new_dims", lambda lib, a, b: a.expand(2, 3, 4) * b, ((4,), (2, 3, 4))),
    OpSample("repeat", lambda lib, a, b: a.repeat(2, 3) * b, ((2, 3), (4, 9))),
    OpSample("repeat_new_dims", lambda lib, a, b: a.repeat(2, 1, 2) * b, ((3,), (2, 1, 6))),
    OpSample("contiguous", lambda lib, a: a.t().contiguous() * 2, ((3, 4),)),
    OpSample("flip", lambda lib, a, b: a.flip(1) * b, ((3, 4), (3, 4))),
    OpSample("flip_dims", lambda lib, a, b: lib.flip(a, (0, 1)) * b, ((3, 4), (3, 4))),
    OpSample("pad", lambda lib, a, b: pad(lib)(a, (1, 2)) * b, ((3, 4), (3, 7))),
    OpSample("pad_2d_value", lambda lib, a, b: pad(lib)(a, (1, 0, 0, 2), value=0.5) * b, ((3, 4), (5, 5))),
    OpSample("cat", lambda lib, a, b: lib.cat([a, b, a], dim=1), ((2, 3), (2, 1))),
    OpSample("cat_dim0", lambda lib, a, b: lib.cat((a * 2, b)), ((2, 3), (1, 3))),
    OpSample("stack", lambda lib, a, b: lib.stack([a, b * 2]), ((2, 3), (2, 3))),
    OpSample("stack_last", lambda lib, a, b: lib.stack([a, b], dim=-1), ((2, 3), (2, 3))),
    OpSample("split_int", lambda lib, a: _weighted_cat(lib, a.split(2, dim=1), 1), ((3, 5),)),
    OpSample("split_sizes", lambda lib, a: _weighted_cat(lib, lib.split(a, [1, 3], dim=0), 0), ((4, 2),)),
    OpSample("chunk", lambda lib, a: _weighted_cat(lib, a.chunk(3, dim=1), 1), ((2, 7),)),
    OpSample("unbind", lambda lib, a: lib.stack([p * (i + 1) for i, p in enumerate(a.unbind(1))]), ((3, 4),)),
    # indexing
    OpSample("index_int", lambda lib, a: a[1] * 2, ((3, 4),)),
    OpSample("index_slice_step", lambda lib, a: a[::2, 1:3] * 2, ((5, 4),)),
    OpSample("index_ellipsis_none", lambda lib, a: a[..., None, 1] * 2, ((2, 3, 4),)),
    OpSample("index_negative", lambda lib, a: a[-1, -2:] * 2, ((3, 4),)),
    OpSample("index_int_array_dups", lambda lib, a, i: a[i] * 2, ((3, 4), Const(DUP_INDEX))),
    OpSample("index_int_array_dim1", lambda lib, a, i: a[:, i] * 2, ((2, 3), Const(DUP_INDEX))),
    OpSample("index_two_arrays", lambda lib, a, i: a[i, i] * 2, ((3, 3), Const(DUP_INDEX))),
    OpSample("index_bool_mask", lambda lib, a, m: a[m] * 2, ((3, 4), Const(MASK))),
    OpSample("index_row_mask", lambda lib, a, m: a[m[:, 0]] * 2, ((3, 4), Const(MASK))),
    OpSample("setitem_slice", _setitem_slice, ((4, 4), (2, 3))),
    OpSample("setitem_mask", _setitem_mask, ((3, 4), Const(MASK))),
    OpSample("setitem_int_array", _setitem_int_array, ((4, 3), (2, 3), Const(np.array([3, 1])))),
    OpSample("gather", lambda lib, a, i: lib.gather(a, 1, i), ((3, 4), Const(GATHER_INDEX))),
    OpSample("gather_dim0", lambda lib, a, i: a.gather(0, i[:2]), ((4, 3), Const(GATHER_INDEX))),
    OpSample("scatter_add", lambda lib, a, s, i: a.scatter_add(1, i, s), ((2, 3), (2, 4), Const(SCATTER_INDEX))),
    OpSample("scatter_add_dim0", lambda lib, a, s, i: lib.scatter_add(a, 0, i[:, :3], s), ((3, 3), (2, 3),
                                                                                        Const(SCATTER_INDEX))),
    OpSample("index_select", lambda lib, a, i: lib.index_select(a, 1, i), ((2, 3), Const(DUP_INDEX))),
    OpSample("index_select_dim0", lambda lib, a, i: a.index_select(0, i), ((3, 2), Const(DUP_INDEX))),
    OpSample("masked_fill", lambda lib, a, m: a.masked_fill(m, -1.0), ((3, 4), Const(MASK))),
    OpSample("masked_fill_broadcast", lambda lib, a, m: lib.masked_fill(a, m[0], 2.0), ((3, 4), Const(MASK))),
    # added for programs written against torch (issue 10)
    OpSample("log1p", lambda lib, a: lib.log1p(a), (Positive((3, 4)),)),
    OpSample("expm1", lambda lib, a: a.expm1(), ((3, 4),)),
    OpSample("log2", lambda lib, a: a.log2(), (Positive((3, 4)),)),
    OpSample("log10", lambda lib, a: lib.log10(a), (Positive((3, 4)),)),
    OpSample("sinh", lambda lib, a: lib.sinh(a), ((3, 4),)),
    OpSample("cosh", lambda lib, a: a.cosh(), ((3, 4),)),
    OpSample("atan2", lambda lib, a, b: lib.atan2(a, b), ((3, 4), (4,))),
    OpSample("erf_toplevel", lambda lib, a: lib.erf(a), ((3, 4),)),
    OpSample("remainder", lambda lib, a, b: lib.remainder(a, b), ((3, 4), Positive((4,)))),
    OpSample("mod_operator", lambda lib, a: a % 0.7, ((3, 4),)),
    OpSample("fmod", lambda lib, a, b: lib.fmod(a, b), ((3, 4), Positive((3, 4)))),
    OpSample("frac", lambda lib, a: (a * 3).frac(), ((3, 4),)),
    OpSample("lerp_scalar", lambda lib, a, b: lib.lerp(a, b, 0.3), ((3, 4), (3, 4))),
    OpSample("lerp_tensor_weight", lambda lib, a, b, w: a.lerp(b, w), ((3, 4), (4,), (3, 1))),
    OpSample("clamp_min_fn", lambda lib, a: lib.clamp_min(a, 0.2), ((3, 4),)),
    OpSample("tril", lambda lib, a: lib.tril(a), ((4, 4),)),
    OpSample("tril_offset_batched", lambda lib, a: a.tril(-1), ((2, 3, 4),)),
    OpSample("triu", lambda lib, a: a.triu(1), ((3, 4),)),
    OpSample("narrow", lambda lib, a: a.narrow(1, 1, 2) * 2, ((3, 4),)),
    OpSample("narrow_negative_start", lambda lib, a: lib.narrow(a, 0, -2, 2) * 2, ((3, 4),)),
    OpSample("roll_dim", lambda lib, a, b: lib.roll(a, 1, 1) * b, ((3, 4), (3, 4))),
    OpSample("roll_dims", lambda lib, a, b: a.roll((1, -2), (0, 1)) * b, ((3, 4), (3, 4))),
    OpSample("roll_flat", lambda lib, a, b: lib.roll(a, 5) * b, ((3, 4), (3, 4))),
    OpSample("movedim", lambda lib, a, b: lib.movedim(a, 0, -1) * b, ((2, 3, 4), (3, 4, 2))),
    OpSample("tile", lambda lib, a, b: lib.tile(a, (2, 1, 2)) * b, ((3, 4), (2, 3, 8))),
    OpSample("broadcast_to", lambda lib, a, b: lib.broadcast_to(a, (2, 3, 4)) * b, ((3, 1), (2, 3, 4))),
    OpSample("diag_of_vector", lambda lib, a, b: lib.diag(a, 1) * b, ((3,), (4, 4))),
    OpSample("diag_of_matrix", lambda lib, a: a.diag(-1) * 2, ((4, 3),)),
    OpSample("diagonal_batched", lambda lib, a: lib.diagonal(a, 0, 1, 2) * 2, ((2, 3, 4),)),
    OpSample("trace", lambda lib, a: lib.trace(a), ((3, 4),)),
    OpSample("hstack", lambda lib, a, b: lib.hstack([a, b * 2]), ((3, 2), (3, 4))),
    OpSample("vstack_vectors", lambda lib, a, b: lib.vstack([a, b * 2]), ((4,), (4,))),
    OpSample("meshgrid_ij", lambda lib, a, b: _meshgrid(lib, a, b, "ij"), ((3,), (4,))),
    OpSample("meshgrid_xy", lambda lib, a, b: _meshgrid(lib, a, b, "xy"), ((3,), (4,))),
    OpSample("sort_values", lambda lib, a: lib.sort(a, dim=1).values, ((3, 4),)),
    OpSample("sort_descending", lambda lib, a: a.sort(0, descending=True)[0], ((3, 4),)),
    OpSample("topk", lambda lib, a: lib.topk(a, 2).values, ((3, 5),)),
    OpSample("topk_smallest_dim0", lambda lib, a: a.topk(2, dim=0, largest=False)[0], ((4, 3),)),
    OpSample("kthvalue", lambda lib, a: lib.kthvalue(a, 2, 1).values, ((3, 4),)),
    OpSample("median_all", lambda lib, a: a.median(), ((3, 4),)),
    OpSample("median_dim_keepdim", lambda lib, a: lib.median(a, 1, keepdim=True).values, ((3, 4),)),
    OpSample("cumprod", lambda lib, a: lib.cumprod(a, 1), ((3, 4),)),
    OpSample("cumprod_with_zeros", lambda lib, a, z: (a * z).cumprod(dim=1), ((3, 4), Const(WITH_ZERO))),
    OpSample("std_mean", _std_mean, ((3, 4),)),
    OpSample("einsum_matmul", lambda lib, a, b: lib.einsum("ij,jk->ik", a, b), ((3, 4), (4, 2))),
    OpSample("einsum_implicit_list", lambda lib, a, b: lib.einsum("ij,jk", [a, b]), ((3, 4), (4, 2))),
    OpSample("einsum_attention", lambda lib, q, k: lib.einsum("bhqd,bhkd->bhqk", q, k), ((2, 2, 3, 4), (2, 2, 5, 4))),
    OpSample("einsum_ellipsis_broadcast", lambda lib, a, b: lib.einsum("...ij,...jk->...ik", a, b),
             ((2, 1, 3, 4), (5, 4, 2))),
    OpSample("einsum_sum_out", lambda lib, a, b: lib.einsum("ij,k->k", a, b), ((3, 4), (2,))),
    OpSample("einsum_three", lambda lib, a, b, c: lib.einsum("i,ij,j->", a, b, c), ((3,), (3, 4), (4,))),
    OpSample("outer", lambda lib, a, b: lib.outer(a, b), ((3,), (4,))),
    OpSample("addmm", lambda lib, c, a, b: lib.addmm(c, a, b, beta=0.5, alpha=2.0), ((4,), (3, 5), (5, 4))),
    OpSample("baddbmm", lambda lib, c, a, b: lib.baddbmm(c, a, b, alpha=0.5), ((2, 3, 4), (2, 3, 5), (2, 5, 4))),
    OpSample("tensordot", lambda lib, a, b: lib.tensordot(a, b, dims=([1, 2], [0, 1])), ((2, 3, 4), (3, 4, 5))),
    OpSample("scatter_src", lambda lib, a, s, i: a.scatter(1, i, s), ((2, 3), (2, 3), Const(PERMUTATION_INDEX))),
    OpSample("scatter_value", lambda lib, a, i: lib.scatter(a, 1, i[:, :2], 0.5), ((2, 3), Const(PERMUTATION_INDEX))),
    OpSample("masked_select", lambda lib, a, m: lib.masked_select(a, m) * 2, ((3, 4), Const(MASK))),
    OpSample("repeat_interleave", lambda lib, a, b: a.repeat_interleave(2, dim=0) * b, ((3, 2), (6, 2))),
    OpSample("repeat_interleave_flat", lambda lib, a: lib.repeat_interleave(a, 3) * 2, ((2, 2),)),
    OpSample("index_add", lambda lib, a, s, i: a.index_add(0, i, s, alpha=2.0), ((3, 2), (5, 2), Const(DUP_INDEX))),
    OpSample("index_add_dim1", lambda lib, a, s, i: lib.index_add(a, 1, i, s), ((2, 3), (2, 5), Const(DUP_INDEX))),
    OpSample("index_fill", lambda lib, a, i: a.index_fill(1, i[:2], -1.0), ((2, 3), Const(DUP_INDEX))),
    OpSample("logit", lambda lib, a: lib.logit(a * 0.3), (Positive((3, 4)),)),
    OpSample("logit_eps", lambda lib, a: a.logit(eps=0.1), (Positive((3, 4)),)),
    OpSample("sum_to_size", lambda lib, a: a.sum_to_size(3, 1), ((2, 3, 4),)),
    OpSample("pad_sequence", lambda lib, a, b: lib.nn.utils.rnn.pad_sequence([a, b], batch_first=True, padding_value=0.5),
             ((2, 3), (4, 3))),
    OpSample("pad_sequence_left", lambda lib, a, b: lib.nn.utils.rnn.pad_sequence([a, b], padding_side="left"),
             ((3,), (1,))),
    OpSample("linalg_inv", lambda lib, a: lib.linalg.inv(_well_conditioned(lib, a)), ((2, 3, 3),)),
    OpSample("linalg_det", lambda lib, a: lib.linalg.det(a), ((2, 3, 3),)),
    OpSample("linalg_slogdet", _slogdet, ((2, 3, 3),)),
    OpSample("linalg_solve", lambda lib, a, b: lib.linalg.solve(_well_conditioned(lib, a), b), ((3, 3), (3, 2))),
    OpSample("linalg_solve_vector_broadcast", lambda lib, a, b: lib.linalg.solve(_well_conditioned(lib, a), b),
             ((2, 3, 3), (3,))),
    OpSample("linalg_solve_right", lambda lib, a, b: lib.linalg.solve(_well_conditioned(lib, a), b, left=False),
             ((3, 3), (2, 3))),
    OpSample("linalg_cholesky", lambda lib, a: lib.linalg.cholesky(_spd(lib, a)), ((2, 3, 3),)),
    OpSample("linalg_cholesky_upper", lambda lib, a: lib.linalg.cholesky(_spd(lib, a), upper=True), ((3, 3),)),
    OpSample("linalg_qr_tall", _qr, ((2, 4, 3),)),
    OpSample("linalg_qr_wide", _qr, ((3, 5),)),
    OpSample("linalg_qr_complete_square", lambda lib, a: _qr(lib, a, "complete"), ((3, 3),)),
    OpSample("linalg_eigh", _eigh, ((2, 3, 3),)),
    OpSample("linalg_eigh_upper", lambda lib, a: _eigh(lib, a, "U"), ((4, 4),)),
    OpSample("linalg_svd_tall", _svd, ((2, 4, 3),)),
    OpSample("linalg_svd_wide", _svd, ((3, 5),)),
    OpSample("linalg_svd_full_matrices", lambda lib, a: _svd(lib, a, True), ((4, 3),)),
    OpSample("linalg_svdvals", lambda lib, a: lib.linalg.svdvals(a), ((2, 3, 4),)),
    OpSample("linalg_pinv_tall", lambda lib, a: lib.linalg.pinv(a), ((4, 3),)),
    OpSample("linalg_pinv_wide", lambda lib, a: lib.linalg.pinv(a), ((2, 3, 5),)),
    OpSample("linalg_matrix_power", lambda lib, a: lib.linalg.matrix_power(a, 5), ((3, 3),)),
    OpSample("linalg_matrix_power_negative", lambda lib, a: lib.linalg.matrix_power(_well_conditioned(lib, a), -2),
             ((2, 3, 3),)),
    OpSample("linalg_vector_norm", lambda lib, a: lib.linalg.vector_norm(a), ((3, 4),)),
    OpSample("linalg_vector_norm_ord3_dim", lambda lib, a: lib.linalg.vector_norm(a, 3, dim=1, keepdim=True),
             ((3, 4),)),
    OpSample("linalg_vector_norm_inf", lambda lib, a: lib.linalg.vector_norm(a, float("inf"), dim=(0, 2)),
             ((2, 3, 4),)),
    OpSample("linalg_vector_norm_neg_inf", lambda lib, a: lib.linalg.vector_norm(a, float("-inf")), ((3, 4),)),
    OpSample("linalg_vector_norm_one_keepdim", lambda lib, a: lib.linalg.vector_norm(a, 1, keepdim=True), ((3, 4),)),
    OpSample("linalg_matrix_norm_fro", lambda lib, a: lib.linalg.matrix_norm(a), ((2, 3, 4),)),
    OpSample("linalg_matrix_norm_nuc", lambda lib, a: lib.linalg.matrix_norm(a, "nuc", keepdim=True), ((2, 3, 4),)),
    OpSample("linalg_matrix_norm_2", lambda lib, a: lib.linalg.matrix_norm(a, 2, dim=(0, 2)), ((3, 2, 4),)),
    OpSample("linalg_matrix_norm_neg2", lambda lib, a: lib.linalg.matrix_norm(a, -2), ((4, 3),)),
    OpSample("linalg_matrix_norm_1", lambda lib, a: lib.linalg.matrix_norm(a, 1), ((2, 3, 4),)),
    OpSample("linalg_matrix_norm_neg1_keepdim", lambda lib, a: lib.linalg.matrix_norm(a, -1, keepdim=True), ((3, 4),)),
    OpSample("linalg_matrix_norm_inf", lambda lib, a: lib.linalg.matrix_norm(a, float("inf"), dim=(2, 0)),
             ((3, 2, 4),)),
    OpSample("linalg_matrix_norm_neg_inf", lambda lib, a: lib.linalg.matrix_norm(a, float("-inf")), ((3, 4),)),
    OpSample("linalg_norm_flat", lambda lib, a: lib.linalg.norm(a), ((2, 3, 4),)),
    OpSample("linalg_norm_matrix_ord", lambda lib, a: lib.linalg.norm(a, 1), ((3, 4),)),
    OpSample("linalg_norm_vector_ord_dim", lambda lib, a: lib.linalg.norm(a, 4, dim=-1), ((2, 3, 4),)),
    OpSample("linalg_norm_matrix_dims", lambda lib, a: lib.linalg.norm(a, dim=(1, 2)), ((2, 3, 4),)),
    OpSample("unfold_overlapping", lambda lib, a: a.unfold(1, 3, 2), ((2, 8, 3),)),
    OpSample("unfold_gaps_last_dim", lambda lib, a: a.unfold(-1, 2, 3), ((3, 7),)),
    OpSample("erfinv", lambda lib, a: lib.erfinv(lib.tanh(a)), ((3, 4),)),
    OpSample("special_erfinv", lambda lib, a: lib.special.erfinv(a * 0.49) * 2, (Positive((3, 4)),)),
    OpSample("special_expit_logsumexp", lambda lib, a: lib.special.logsumexp(lib.special.expit(a), 1), ((3, 4),)),
    # a composite that chains many rules, as a training step does
    OpSample("mlp_like", lambda lib, x, w, b: (lib.relu(x @ w.t() + b).log_softmax(1)[:, 0]).mean(),
             ((4, 3), (5, 3), (5,))),
]


def make_inputs(sample, lib, rng):
    """Fresh inputs for `lib` (disttorch or torch) built from the same random numbers for a given rng seed."""
    out = []
    for spec in sample.inputs:
        if isinstance(spec, Const):
            out.append(lib.tensor(spec.array))
        elif isinstance(spec, Scalar):
            out.append(spec.value)
        elif isinstance(spec, Positive):
            out.append(lib.tensor(rng.uniform(0.5, 2.0, spec.shape), requires_grad=True))
        else:
            out.append(lib.tensor(rng.standard_normal(spec), requires_grad=True))
    return out
