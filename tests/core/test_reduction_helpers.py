"""Array-level helpers of disttorch/core/ops/reduction.py that the ops' own tests reach only partly."""
import numpy as np
import pytest

from disttorch.core.ops.reduction import max_keepdims


@pytest.mark.parametrize("shape", [(3, 4, 64), (5, 65), (2, 17), (7, 15), (4, 1), (6,)])
def test_max_keepdims_equals_numpy_max_including_nan_and_inf(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    flat[::7] = -np.inf
    flat[5::11] = np.inf
    flat[3::13] = np.nan
    for axis in range(x.ndim):
        np.testing.assert_array_equal(max_keepdims(x, axis), x.max(axis=axis, keepdims=True))
