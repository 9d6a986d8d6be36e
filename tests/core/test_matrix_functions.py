"""torch.linalg beyond the op table: result types, errors, and the functions without a gradient."""
import numpy as np
import pytest

import disttorch

torch = pytest.importorskip("torch")


def _both(array):
    return disttorch.tensor(array), torch.tensor(array)


def _assert_same(ours, theirs):
    assert tuple(ours.shape) == tuple(theirs.shape)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10, atol=1e-12)


def test_results_are_named_like_torch():
    ours, theirs = _both(np.random.default_rng(0).standard_normal((4, 3)))
    for name, args in [("slogdet", ()), ("qr", ()), ("eigh", ()), ("svd", (False,))]:
        matrix_o, matrix_t = (ours[:3], theirs[:3]) if name in ("slogdet", "eigh") else (ours, theirs)
        if name == "eigh":
            matrix_o, matrix_t = matrix_o + matrix_o.mT, matrix_t + matrix_t.mT
        result_o = getattr(disttorch.linalg, name)(matrix_o, *args)
        result_t = getattr(torch.linalg, name)(matrix_t, *args)
        assert type(result_o).__name__ == type(result_t).__name__
        assert len(result_o) == len(result_t)
        for index, field in enumerate(result_o._fields):
            assert getattr(result_t, field) is result_t[index]
            # abs: decompositions agree up to the sign of each vector
            _assert_same(getattr(result_o, field).abs(), getattr(result_t, field).abs())


def test_qr_modes_and_their_gradients():
    ours, theirs = _both(np.random.default_rng(1).standard_normal((5, 3)))
    for mode in ("complete", "r"):
        q_o, r_o = disttorch.linalg.qr(ours, mode=mode)
        q_t, r_t = torch.linalg.qr(theirs, mode=mode)
        _assert_same(q_o, q_t)
        _assert_same(r_o, r_t)
    leaf = disttorch.tensor(ours.numpy(), requires_grad=True)
    with pytest.raises(RuntimeError, match="mode='r'"):
        disttorch.linalg.qr(leaf, mode="r").R.sum().backward()
    with pytest.raises(RuntimeError, match="nrows > ncols"):
        disttorch.linalg.qr(leaf, mode="complete").Q.sum().backward()


def test_functions_without_a_gradient_path_match_torch():
    ours, theirs = _both(np.array([[0.0, 2.0, -1.0], [3.0, 0.0, 0.5], [1.0, 1.0, 1.0]]))
    _assert_same(disttorch.linalg.vector_norm(ours, 0), torch.linalg.vector_norm(theirs, 0))
    _assert_same(disttorch.linalg.matrix_power(ours, 0), torch.linalg.matrix_power(theirs, 0))
    _assert_same(disttorch.logdet(ours), torch.logdet(theirs))
    _assert_same(disttorch.logdet(-ours), torch.logdet(-theirs))
    _assert_same(disttorch.inverse(ours), torch.inverse(theirs))
    _assert_same(ours.pinverse(), theirs.pinverse())
    _assert_same(disttorch.pinverse(ours[:2]), torch.pinverse(theirs[:2]))
    _assert_same(ours.det(), theirs.det())
    _assert_same(disttorch.linalg.pinv(ours[:2], atol=0.5), torch.linalg.pinv(theirs[:2], atol=0.5))
    _assert_same(disttorch.linalg.eigvalsh(ours + ours.mT), torch.linalg.eigvalsh(theirs + theirs.mT))


def _linalg_errors(lib):
    singular = lib.tensor([[1.0, 2.0], [2.0, 4.0]])
    return [
        lambda: lib.linalg.inv(singular),
        lambda: lib.linalg.inv(lib.zeros(3, 4)),
        lambda: lib.linalg.inv(lib.zeros(3, 3, dtype=lib.int64)),
        lambda: lib.linalg.det(lib.zeros(3)),
        lambda: lib.linalg.cholesky(-lib.eye(3)),
        lambda: lib.linalg.solve(singular, lib.ones(2)),
        lambda: lib.linalg.qr(lib.zeros(3, 3), mode="full"),
        lambda: lib.linalg.matrix_norm(lib.zeros(3, 3), ord=3),
        lambda: lib.linalg.norm(lib.zeros(2, 2, 2), ord=1),
    ]


@pytest.mark.parametrize("index", range(len(_linalg_errors(disttorch))))
def test_errors_match_torch_types(index):
    with pytest.raises(Exception) as theirs:
        _linalg_errors(torch)[index]()
    with pytest.raises(type(theirs.value).__mro__[1] if type(theirs.value).__name__ == "_LinAlgError"
                       else type(theirs.value)) as ours:
        _linalg_errors(disttorch)[index]()
    if type(theirs.value).__name__ == "_LinAlgError":
        assert isinstance(ours.value, disttorch.linalg.LinAlgError)
        assert str(ours.value).split(":")[0] == str(theirs.value).split(":")[0]
    elif index not in (0, 4, 5):
        assert str(ours.value) == str(theirs.value)
