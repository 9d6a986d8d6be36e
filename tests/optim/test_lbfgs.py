"""LBFGS against torch.optim.LBFGS in float64: the same iterates, losses and counters, with and without
the strong-Wolfe line search, and the same state across step() calls and state_dict round trips."""
import numpy as np
import pytest

import disttorch

torch = pytest.importorskip("torch")

START = np.array([-1.5, 2.0, 0.5, -0.7])


def _rosenbrock(x):
    return ((1 - x[:-1]) ** 2 + 100 * (x[1:] - x[:-1] ** 2) ** 2).sum()


def _run(lib, calls=4, **options):
    x = lib.nn.Parameter(lib.tensor(START, dtype=lib.float64))
    w = lib.nn.Parameter(lib.tensor(np.array([[0.3, -0.2], [0.1, 0.4]]), dtype=lib.float64))
    opt = lib.optim.LBFGS([x, w], **options)

    def closure():
        opt.zero_grad()
        loss = _rosenbrock(x) + ((w @ w.t() - lib.eye(2, dtype=lib.float64)) ** 2).sum()
        loss.backward()
        return loss

    losses = [float(opt.step(closure).detach()) for _ in range(calls)]
    state = opt.state[x]
    return losses, x.detach().numpy().copy(), w.detach().numpy().copy(), state["func_evals"], state["n_iter"]


@pytest.mark.parametrize("options", [
    dict(),
    dict(lr=0.5, max_iter=7, history_size=3),
    dict(line_search_fn="strong_wolfe"),
    dict(lr=1, max_iter=5, history_size=4, line_search_fn="strong_wolfe", tolerance_change=1e-12),
], ids=["defaults", "short_history", "strong_wolfe", "strong_wolfe_short"])
def test_lbfgs_follows_torch(options):
    ours, ref = _run(disttorch, **options), _run(torch, **options)
    np.testing.assert_allclose(ours[0], ref[0], rtol=1e-9)
    np.testing.assert_allclose(ours[1], ref[1], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ours[2], ref[2], rtol=1e-8, atol=1e-12)
    assert ours[3:] == ref[3:]


def test_lbfgs_defaults_and_refusals_match_torch():
    p = disttorch.nn.Parameter(disttorch.ones(2))
    assert disttorch.optim.LBFGS([p]).defaults == torch.optim.LBFGS([torch.nn.Parameter(torch.ones(2))]).defaults
    with pytest.raises(ValueError, match="per-parameter options"):
        disttorch.optim.LBFGS([{"params": [p]}, {"params": [disttorch.nn.Parameter(disttorch.ones(1))]}])
    with pytest.raises(RuntimeError, match="strong_wolfe"):
        disttorch.optim.LBFGS([p], line_search_fn="backtracking")
    with pytest.raises(RuntimeError, match="closure"):
        disttorch.optim.LBFGS([p]).step(None)


def test_lbfgs_state_survives_a_state_dict_round_trip(tmp_path):
    x = disttorch.nn.Parameter(disttorch.tensor(START))
    opt = disttorch.optim.LBFGS([x], max_iter=3)

    def closure():
        opt.zero_grad()
        loss = _rosenbrock(x)
        loss.backward()
        return loss

    opt.step(closure)
    disttorch.save(opt.state_dict(), tmp_path / "opt.pt")
    fresh = disttorch.optim.LBFGS([x], max_iter=3)
    fresh.load_state_dict(disttorch.load(tmp_path / "opt.pt"))
    state = fresh.state[x]
    assert state["n_iter"] == opt.state[x]["n_iter"] > 0
    assert len(state["old_dirs"]) == len(opt.state[x]["old_dirs"])
    np.testing.assert_array_equal(state["d"].numpy(), opt.state[x]["d"].numpy())
