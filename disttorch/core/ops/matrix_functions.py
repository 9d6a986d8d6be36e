"""Functions of whole matrices behind torch.linalg: inverse, determinants, solves, decompositions and norms.

Each op's forward (the backend's LAPACK through xp.linalg) sits beside its backward; they act on the last
two dims and batch over the rest. A decomposition with several outputs (qr, eigh, svd) is computed once,
then each output leaves through its own node, which holds the whole decomposition and returns its own
part of the gradient: the rules are linear in the output gradients, so the engine's sum over the nodes is
the full gradient, and an output nobody uses adds no work.

Real inputs only (disttorch has no complex dtypes). Rank-deficient and repeated-eigenvalue inputs give
the same infinities and NaNs in backward as PyTorch's formulas do.
"""
import collections

import numpy as np

from .. import autograd
from ..autograd import Function
from ..backend import get_array_module
from . import reduction, shape
from .linalg import matmul

slogdet_result = collections.namedtuple("linalg_slogdet", ["sign", "logabsdet"])
qr_result = collections.namedtuple("linalg_qr", ["Q", "R"])
eigh_result = collections.namedtuple("linalg_eigh", ["eigenvalues", "eigenvectors"])
svd_result = collections.namedtuple("linalg_svd", ["U", "S", "Vh"])


class LinAlgError(RuntimeError):
    """torch.linalg.LinAlgError: the input is singular or not positive-definite."""


def _mT(array):
    return get_array_module(array).swapaxes(array, -1, -2)


_C10_TYPE_NAMES = {"int64": "Long", "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool"}


def _check_floating(name, x):
    if x._data.dtype.kind not in "fV":
        type_name = _C10_TYPE_NAMES.get(x._data.dtype.name, x._data.dtype.name)
        raise RuntimeError(f"{name}: Expected a floating point or complex tensor as input. Got {type_name}")


def _check_matrix(name, A, square=True):
    if not isinstance(A, autograd.Tensor):
        raise TypeError(f"{name}(): argument 'A' must be Tensor, not {type(A).__name__}")
    _check_floating(name, A)
    if A._data.ndim < 2:
        raise RuntimeError(f"{name}: The input tensor A must have at least 2 dimensions.")
    if square and A._data.shape[-1] != A._data.shape[-2]:
        raise RuntimeError(f"{name}: A must be batches of square matrices, but they are "
                           f"{A._data.shape[-2]} by {A._data.shape[-1]} matrices")


def _lapack(name, fn, *args, failure):
    try:
        return fn(*args)
    except np.linalg.LinAlgError:
        raise LinAlgError(f"{name}: {failure}") from None


# ---- inverse, determinant, solve ------------------------------------------------------------------------
class Inv(Function):
    @staticmethod
    def forward(ctx, A):
        xp = get_array_module(A)
        inverse = _lapack("linalg.inv", xp.linalg.inv, A, failure="The inversion could not be completed because "
                          "the input matrix is singular.")
        ctx.save_for_backward(inverse)
        return inverse

    @staticmethod
    def backward(ctx, g):
        (inverse,) = ctx.saved_tensors
        inverse_t = _mT(inverse)
        return -(inverse_t @ g @ inverse_t)


def inv(A):
    _check_matrix("linalg.inv", A)
    return Inv.apply(A)


class Det(Function):
    @staticmethod
    def forward(ctx, A):
        determinant = get_array_module(A).linalg.det(A)
        ctx.save_for_backward(A, determinant)
        return determinant

    @staticmethod
    def backward(ctx, g):
        A, determinant = ctx.saved_tensors
        # d det(A) = det(A) tr(A^-1 dA)
        inverse_t = _mT(get_array_module(A).linalg.inv(A))
        return (g * determinant)[..., None, None] * inverse_t


def det(A):
    _check_matrix("linalg.det", A)
    return Det.apply(A)


class LogAbsDet(Function):
    @staticmethod
    def forward(ctx, A):
        _, logabsdet = get_array_module(A).linalg.slogdet(A)
        ctx.save_for_backward(A)
        return logabsdet

    @staticmethod
    def backward(ctx, g):
        (A,) = ctx.saved_tensors
        return g[..., None, None] * _mT(get_array_module(A).linalg.inv(A))


def slogdet(A):
    _check_matrix("linalg.slogdet", A)
    sign = get_array_module(A._data).linalg.slogdet(A._data)[0]
    return slogdet_result(autograd.Tensor._wrap(sign), LogAbsDet.apply(A))


def logdet(A):
    """log det(A): NaN where the determinant is negative, as in PyTorch."""
    sign, logabsdet = slogdet(A)
    xp = get_array_module(sign._data)
    return logabsdet + autograd.Tensor._wrap(xp.where(sign._data < 0, np.nan, xp.where(sign._data == 0, -np.inf, 0.0))
                                             .astype(sign._data.dtype))


class Solve(Function):
    @staticmethod
    def forward(ctx, A, B):
        xp = get_array_module(A)
        X = _lapack("torch.linalg.solve", xp.linalg.solve, A, B,
                    failure="The solver failed because the input matrix is singular.")
        ctx.save_for_backward(A, X)
        return X

    @staticmethod
    def backward(ctx, g):
        A, X = ctx.saved_tensors
        grad_B = get_array_module(g).linalg.solve(_mT(A), g)
        grad_A = -(grad_B @ _mT(X)) if ctx.needs_input_grad[0] else None
        return grad_A, grad_B


def solve(A, B, *, left=True):
    _check_matrix("torch.linalg.solve", A)
    if not left:
        # X A = B  <=>  A^T X^T = B^T
        return solve(A.mT, B.mT).mT
    # B is a batch of vectors when it has one dim fewer than A and matches A's leading shape, as in PyTorch.
    vector = B.ndim == 1 or (B.ndim == A.ndim - 1 and tuple(B.shape) == tuple(A.shape[:-1]))
    if vector:
        B = B.unsqueeze(-1)
    batch = tuple(np.broadcast_shapes(tuple(A.shape[:-2]), tuple(B.shape[:-2])))
    A = A.expand(*batch, *A.shape[-2:]) if tuple(A.shape[:-2]) != batch else A
    B = B.expand(*batch, *B.shape[-2:]) if tuple(B.shape[:-2]) != batch else B
    X = Solve.apply(A, B)
    return X.squeeze(-1) if vector else X


def matrix_power(A, n):
    _check_matrix("linalg.matrix_power", A)
    if n == 0:
        xp = get_array_module(A._data)
        return autograd.Tensor._wrap(xp.broadcast_to(xp.eye(A.shape[-1], dtype=A._data.dtype), A.shape).copy())
    if n < 0:
        A, n = inv(A), -n
    # Square and multiply: about log2(n) products, all through matmul's backward.
    result, power = None, A
    while n:
        if n & 1:
            result = power if result is None else matmul(result, power)
        n >>= 1
        if n:
            power = matmul(power, power)
    return result


# ---- cholesky --------------------------------------------------------------------------------------------
class Cholesky(Function):
    @staticmethod
    def forward(ctx, A):
        xp = get_array_module(A)
        L = _lapack("linalg.cholesky", xp.linalg.cholesky, A,
                    failure="The factorization could not be completed because the input is not positive-definite.")
        ctx.save_for_backward(L)
        return L

    @staticmethod
    def backward(ctx, g):
        (L,) = ctx.saved_tensors
        xp = get_array_module(L)
        # Only the lower triangle of L is free: symmetrise tril(L^T gL) with its diagonal halved, then
        # undo both factors: gA = L^-T P L^-1 (Murray 2016), symmetric as A is.
        product = xp.tril(_mT(L) @ g)
        P = 0.5 * (product + _mT(xp.tril(product, -1)))
        L_inv = xp.linalg.inv(L)
        return _mT(L_inv) @ P @ L_inv


def cholesky(A, *, upper=False):
    _check_matrix("linalg.cholesky", A)
    L = Cholesky.apply(A)
    return L.mT if upper else L


# ---- decompositions with several outputs -----------------------------------------------------------------
class _DecompositionOutput(Function):
    """One output of a decomposition computed beforehand; backward is its share of the input's gradient.

    The node keeps the decomposition's own arrays and hands out a copy, so editing the output in place
    cannot change what the sibling outputs' backward reads.
    """

    @staticmethod
    def forward(ctx, A, parts, index):
        ctx.parts = parts
        ctx.index = index
        return parts[index].copy()

    @staticmethod
    def backward(ctx, g):
        return type(ctx).gradient(ctx.parts, ctx.index, g), None, None


def _outputs(node_class, A, parts, count):
    return [node_class.apply(A, parts, index) for index in range(count)]


class QrOutput(_DecompositionOutput):
    @staticmethod
    def gradient(parts, index, g):
        Q, R, mode = parts[0], parts[1], parts[2]
        xp = get_array_module(g)
        m, n = Q.shape[-2], R.shape[-1]
        if mode == "r":
            raise RuntimeError("The derivative of linalg.qr depends on Q, which is not computed when mode='r'. "
                               "Please use linalg.qr(A, mode='reduced') if you are going to differentiate through "
                               "linalg.qr.")
        if mode == "complete" and m > n:
            raise RuntimeError("The QR decomposition is not differentiable when mode='complete' and nrows > ncols.")
        grad_Q = g if index == 0 else xp.zeros_like(Q)
        grad_R = g if index == 1 else xp.zeros_like(R)
        if m >= n:
            return _qr_tall_gradient(Q, R, grad_Q, grad_R)
        # A = Q [R1 R2] with A = [X Y]: X = Q R1 is square, and Y = Q R2 adds its pull on Q.
        Y = parts[3][..., m:]
        grad_R1, grad_R2 = grad_R[..., :m], grad_R[..., m:]
        grad_X = _qr_tall_gradient(Q, R[..., :m], grad_Q + Y @ _mT(grad_R2), grad_R1)
        return xp.concatenate([grad_X, Q @ grad_R2], axis=-1)


def _qr_tall_gradient(Q, R, grad_Q, grad_R):
    """gA = (gQ + Q copyltu(M)) R^-T with M = R gR^T - gQ^T Q, for A = QR with at least as many rows as cols."""
    xp = get_array_module(Q)
    M = R @ _mT(grad_R) - _mT(grad_Q) @ Q
    copyltu = xp.tril(M) + _mT(xp.tril(M, -1))
    return _mT(xp.linalg.solve(R, _mT(grad_Q + Q @ copyltu)))


def qr(A, mode="reduced"):
    _check_matrix("linalg.qr", A, square=False)
    if mode not in ("reduced", "complete", "r"):
        raise RuntimeError(f"qr received unrecognized mode '{mode}' but expected one of 'reduced' (default), 'r', "
                           "or 'complete'")
    xp = get_array_module(A._data)
    Q, R = xp.linalg.qr(A._data, mode="complete" if mode == "complete" else "reduced")
    outputs = _outputs(QrOutput, A, (Q, R, mode, A._data), 2)
    if mode == "r":
        outputs[0] = autograd.Tensor._wrap(xp.empty(0, dtype=A._data.dtype))
    return qr_result(*outputs)


class EighOutput(_DecompositionOutput):
    @staticmethod
    def gradient(parts, index, g):
        L, V = parts
        xp = get_array_module(g)
        if index == 0:
            inner = xp.zeros(V.shape, dtype=V.dtype)
            _set_diagonal(inner, g)
        else:
            # Only the skew-symmetric part of V^T gV moves an orthogonal V; E_ij = L_j - L_i.
            VtgV = _mT(V) @ g
            skew = 0.5 * (VtgV - _mT(VtgV))
            gaps = L[..., None, :] - L[..., :, None]
            _set_diagonal(gaps, np.inf)
            inner = skew / gaps
        return V @ inner @ _mT(V)


def _set_diagonal(array, values):
    """Write values on the diagonal of the last two dims, in place."""
    positions = get_array_module(array).arange(array.shape[-1])
    array[..., positions, positions] = values


def eigh(A, UPLO="L"):
    _check_matrix("linalg.eigh", A)
    if UPLO not in ("L", "U"):
        raise RuntimeError(f"Expected UPLO argument to be 'L' or 'U', but got {UPLO}")
    L, V = get_array_module(A._data).linalg.eigh(A._data, UPLO=UPLO)
    return eigh_result(*_outputs(EighOutput, A, (L, V), 2))


def eigvalsh(A, UPLO="L"):
    return eigh(A, UPLO).eigenvalues


class SvdOutput(_DecompositionOutput):
    @staticmethod
    def gradient(parts, index, g):
        U, S, Vh = parts
        xp = get_array_module(g)
        k = S.shape[-1]
        # With full_matrices the columns of U (rows of Vh) past min(m, n) are arbitrary, so their gradient is
        # ignored, as in PyTorch.
        U, Vh = U[..., :k], Vh[..., :k, :]
        if index == 1:
            return (U * g[..., None, :]) @ Vh
        squares = S * S
        gaps = squares[..., None, :] - squares[..., :, None]  # E_jk = S_k^2 - S_j^2
        _set_diagonal(gaps, np.inf)
        if index == 0:
            g = g[..., :k]
            UtgU = _mT(U) @ g
            inner = (UtgU - _mT(UtgU)) / gaps * S[..., None, :]
            # The part of gU outside U's column space reaches A through S^-1.
            outside = (g - U @ UtgU) / S[..., None, :]
            return U @ inner @ Vh + outside @ Vh
        g = g[..., :k, :]
        VtgV = Vh @ _mT(g)
        inner = S[..., :, None] * ((VtgV - _mT(VtgV)) / gaps)
        outside = (g - (g @ _mT(Vh)) @ Vh) / S[..., :, None]
        return U @ inner @ Vh + U @ outside


def svd(A, full_matrices=True):
    _check_matrix("linalg.svd", A, square=False)
    U, S, Vh = get_array_module(A._data).linalg.svd(A._data, full_matrices=full_matrices)
    return svd_result(*_outputs(SvdOutput, A, (U, S, Vh), 3))


def svdvals(A):
    _check_matrix("linalg.svdvals", A, square=False)
    U, S, Vh = get_array_module(A._data).linalg.svd(A._data, full_matrices=False)
    return SvdOutput.apply(A, (U, S, Vh), 1)


class Pinv(Function):
    @staticmethod
    def forward(ctx, A, atol, rtol):
        xp = get_array_module(A)
        U, S, Vh = xp.linalg.svd(A, full_matrices=False)
        largest = S.max(axis=-1, keepdims=True) if S.shape[-1] else xp.zeros(S.shape[:-1] + (1,), S.dtype)
        cutoff = xp.maximum(atol, rtol * largest)
        kept = S > cutoff
        S_inv = xp.where(kept, 1 / xp.where(kept, S, 1), 0)
        X = (_mT(Vh) * S_inv[..., None, :]) @ _mT(U)
        ctx.save_for_backward(A, X)
        return X

    @staticmethod
    def backward(ctx, g):
        A, X = ctx.saved_tensors
        xp = get_array_module(g)
        # Golub & Pereyra: the derivative of the pseudo-inverse at constant rank.
        Xt, gt = _mT(X), _mT(g)
        row_projector = xp.eye(A.shape[-2], dtype=A.dtype) - A @ X
        col_projector = xp.eye(A.shape[-1], dtype=A.dtype) - X @ A
        grad = -(Xt @ g @ Xt) + row_projector @ gt @ X @ Xt + Xt @ X @ gt @ col_projector
        return grad, None, None


def pinv(A, *, atol=None, rtol=None, hermitian=False):
    _check_matrix("linalg.pinv", A, square=False)
    if rtol is None:
        rtol = 0.0 if atol is not None and atol > 0 else np.finfo(A._data.dtype).eps * max(A.shape[-2:])
    return Pinv.apply(A, 0.0 if atol is None else float(atol), float(rtol))


# ---- norms: composites of reductions, so their gradients come from the reductions' rules -----------------
def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    if dtype is not None:
        x = x.to(dtype)
    _check_floating("linalg.vector_norm", x)
    if dim is None:
        x, dim = (x.reshape(-1), 0) if not keepdim else (x, tuple(range(x.ndim)))
    if ord == 2:
        return reduction.RootOfSquares.apply(reduction.sum(x * x, dim=dim, keepdim=keepdim))
    if ord == float("inf"):
        return reduction.amax(x.abs(), dim=dim, keepdim=keepdim)
    if ord == float("-inf"):
        return reduction.amin(x.abs(), dim=dim, keepdim=keepdim)
    if ord == 0:
        return reduction.sum((x != 0).to(x.dtype), dim=dim, keepdim=keepdim)
    if ord == 1:
        return reduction.sum(x.abs(), dim=dim, keepdim=keepdim)
    return reduction.sum(x.abs() ** ord, dim=dim, keepdim=keepdim) ** (1.0 / ord)


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None):
    if dtype is not None:
        A = A.to(dtype)
    _check_matrix("linalg.matrix_norm", A, square=False)
    rows, cols = (d % A.ndim for d in dim)
    if ord == "fro":
        return vector_norm(A, 2, dim=(rows, cols), keepdim=keepdim)
    if ord in ("nuc", 2, -2):
        # The singular values of the matrices held in the two dims, moved last.
        moved = shape.movedim(A, (rows, cols), (-2, -1))
        values = svdvals(moved)
        reduced = (values.sum(-1) if ord == "nuc" else reduction.amax(values, dim=-1) if ord == 2
                   else reduction.amin(values, dim=-1))
        if keepdim:
            reduced = reduced.unsqueeze(min(rows, cols)).unsqueeze(max(rows, cols))
        return reduced
    if ord in (1, -1, float("inf"), float("-inf")):
        # 1: the largest column sum of |A|; inf: the largest row sum.
        summed, other = (rows, cols) if ord in (1, -1) else (cols, rows)
        sums = reduction.sum(A.abs(), dim=summed, keepdim=True)
        pick = reduction.amax if ord > 0 else reduction.amin
        result = pick(sums, dim=other, keepdim=True)
        return result if keepdim else result.squeeze(max(rows, cols)).squeeze(min(rows, cols))
    raise RuntimeError(f"linalg.matrix_norm: Order {ord} not supported.")


def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None):
    if isinstance(dim, int):
        dim = (dim,)
    if dim is not None and len(dim) == 2:
        return matrix_norm(A, "fro" if ord is None else ord, dim=dim, keepdim=keepdim, dtype=dtype)
    if ord is not None and dim is None:
        if A.ndim == 2:
            return matrix_norm(A, ord, keepdim=keepdim, dtype=dtype)
        if A.ndim != 1:
            raise RuntimeError(f"linalg.norm: If dim is not specified but ord is, the input must be 1D or 2D. Got "
                               f"{A.ndim}D.")
    return vector_norm(A, 2 if ord is None else ord, dim=dim, keepdim=keepdim, dtype=dtype)
