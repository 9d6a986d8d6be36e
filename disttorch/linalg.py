"""torch.linalg: matrix functions on the last two dims, batched over the rest (see core/ops/matrix_functions)."""
from .core.ops.linalg import matmul  # noqa: F401
from .core.ops.matrix_functions import (  # noqa: F401
    LinAlgError, cholesky, det, eigh, eigvalsh, inv, matrix_norm, matrix_power, norm, pinv, qr, slogdet, solve, svd,
    svdvals, vector_norm,
)
