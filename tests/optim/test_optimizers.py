"""Optimizer trajectories, state_dicts and argument validation compared step by step with torch.optim."""
import numpy as np
import pytest

import disttorch
from disttorch.core.tensor import Tensor

torch = pytest.importorskip("torch")

SHAPES = [(3, 4), (5,), ()]
STEPS = 12

CASES = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1, maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.05, amsgrad=True)),
    ("Adam", dict(lr=0.05, weight_decay=0.1)),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1, amsgrad=True, maximize=True)),
    ("Adam", dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True)),
    ("AdamW", dict(lr=0.05)),
    ("AdamW", dict(lr=0.05, weight_decay=0.2, amsgrad=True)),
    ("AdamW", dict(lr=0.05, maximize=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, centered=True, momentum=0.5, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.1)),
    ("Adagrad", dict(lr=0.1, weight_decay=0.1, initial_accumulator_value=0.5)),
    ("Adagrad", dict(lr=0.1, eps=1e-3, maximize=True)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-4)),
    ("Adadelta", dict(lr=0.5, weight_decay=0.1, maximize=True)),
    ("NAdam", dict()),
    ("NAdam", dict(lr=0.05, momentum_decay=0.1, weight_decay=0.1)),
    ("NAdam", dict(lr=0.05, betas=(0.8, 0.95), weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("RAdam", dict()),
    ("RAdam", dict(lr=0.05, betas=(0.5, 0.6), weight_decay=0.1)),
    ("RAdam", dict(lr=0.05, betas=(0.5, 0.6), weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("Adamax", dict()),
    ("Adamax", dict(lr=0.05, betas=(0.8, 0.9), eps=1e-3, weight_decay=0.1)),
    ("Adamax", dict(lr=0.05, maximize=True)),
    ("Rprop", dict()),
    ("Rprop", dict(lr=0.1, etas=(0.3, 1.5), step_sizes=(0.05, 0.2))),
    ("Rprop", dict(lr=0.1, maximize=True)),
    ("ASGD", dict()),
    ("ASGD", dict(lr=0.05, lambd=0.1, alpha=0.5, t0=3, weight_decay=0.1)),
    ("ASGD", dict(lr=0.05, t0=0, maximize=True)),
]


def _case_id(case):
    name, kwargs = case
    return name + "-" + ",".join(f"{k}={v}" for k, v in kwargs.items())


def _initial_values(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for shape in SHAPES]


def _gradient(values, step, index):
    """A quadratic pull towards 0.5 plus step-dependent noise, identical for both frameworks."""
    noise = np.random.default_rng(1000 * step + index).standard_normal(values.shape)
    return np.asarray(2.0 * (values - 0.5) + noise)


class _Run:
    """The same parameters and optimizer built in both frameworks."""

    def __init__(self, name, kwargs, values):
        self.ours = [disttorch.tensor(v, requires_grad=True) for v in values]
        self.theirs = [torch.tensor(v, requires_grad=True) for v in values]
        self.our_opt = getattr(disttorch.optim, name)(self.ours, **kwargs)
        self.their_opt = getattr(torch.optim, name)(self.theirs, **kwargs)

    def step(self, step, skip=()):
        for index, (ours, theirs) in enumerate(zip(self.ours, self.theirs)):
            if index in skip:
                ours.grad, theirs.grad = None, None
                continue
            ours.grad = disttorch.from_numpy(_gradient(ours.detach().numpy(), step, index))
            theirs.grad = torch.from_numpy(_gradient(theirs.detach().numpy(), step, index))
        self.our_opt.step()
        self.their_opt.step()

    def assert_close(self):
        for ours, theirs in zip(self.ours, self.theirs):
            np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_trajectory_matches_torch(case):
    run = _Run(*case, _initial_values())
    for step in range(STEPS):
        # Parameter 2 sometimes has no gradient: the optimizer must leave it (and its state) alone.
        run.step(step, skip=(2,) if step % 3 == 1 else ())
        run.assert_close()


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_state_dict_layout_matches_torch(case):
    run = _Run(*case, _initial_values())
    for step in range(3):
        run.step(step)
    ours, theirs = run.our_opt.state_dict(), run.their_opt.state_dict()
    assert ours["param_groups"] == theirs["param_groups"]
    assert sorted(ours["state"]) == sorted(theirs["state"])
    for index, their_state in theirs["state"].items():
        our_state = ours["state"][index]
        assert sorted(our_state) == sorted(their_state)
        for key, their_value in their_state.items():
            our_value = our_state[key]
            assert isinstance(our_value, Tensor)
            assert str(our_value.dtype) == str(their_value.dtype)
            assert tuple(our_value.shape) == tuple(their_value.shape)
            np.testing.assert_allclose(our_value.numpy(), their_value.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_state_dict_round_trip_continues_identically(case):
    name, kwargs = case
    run = _Run(name, kwargs, _initial_values())
    for step in range(4):
        run.step(step)
    saved = run.our_opt.state_dict()

    resumed = [disttorch.tensor(p.detach().numpy().copy(), requires_grad=True) for p in run.ours]
    resumed_opt = getattr(disttorch.optim, name)(resumed, lr=123.0)
    resumed_opt.load_state_dict(saved)
    assert resumed_opt.param_groups[0]["lr"] == run.our_opt.param_groups[0]["lr"]
    for step in range(4, 8):
        for index, (a, b) in enumerate(zip(run.ours, resumed)):
            a.grad = disttorch.from_numpy(_gradient(a.detach().numpy(), step, index))
            b.grad = disttorch.from_numpy(_gradient(b.detach().numpy(), step, index))
        run.our_opt.step()
        resumed_opt.step()
    for a, b in zip(run.ours, resumed):
        if name in _SCALAR_STATE_CAST_ON_LOAD:  # float32 rounding of a step-size factor: ~1e-8 relative
            np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-6)
        else:
            np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


# Their 0-dim state besides 'step' (mu_product; eta and mu) is float32 until loaded, then takes the parameter's
# dtype, as in torch, so a resumed run rounds those products differently from the run it was saved from.
_SCALAR_STATE_CAST_ON_LOAD = {"NAdam", "ASGD"}


@pytest.mark.parametrize("name", sorted(_SCALAR_STATE_CAST_ON_LOAD))
def test_loaded_scalar_state_dtypes_match_torch(name):
    run = _Run(name, {}, _initial_values())
    run.step(0)
    ours = getattr(disttorch.optim, name)([disttorch.zeros(3, 4, dtype=disttorch.float64, requires_grad=True)])
    theirs = getattr(torch.optim, name)([torch.zeros(3, 4, dtype=torch.float64, requires_grad=True)])
    our_state, their_state = run.our_opt.state_dict(), run.their_opt.state_dict()
    for state in (our_state, their_state):
        state["state"] = {0: state["state"][0]}
        state["param_groups"][0]["params"] = [0]
    ours.load_state_dict(our_state)
    theirs.load_state_dict(their_state)
    loaded = next(iter(ours.state.values()))
    assert {k: str(v.dtype) for k, v in loaded.items()} == {
        k: str(v.dtype) for k, v in next(iter(theirs.state.values())).items()}


def test_loaded_state_is_copied_and_cast_to_param_dtype():
    source = disttorch.zeros(3, dtype=disttorch.float64, requires_grad=True)
    opt = disttorch.optim.Adam([source])
    source.grad = disttorch.ones(3, dtype=disttorch.float64)
    opt.step()
    target = disttorch.zeros(3, requires_grad=True)
    target_opt = disttorch.optim.Adam([target])
    target_opt.load_state_dict(opt.state_dict())
    loaded = target_opt.state[target]
    assert loaded["exp_avg"].dtype == disttorch.float32
    assert loaded["step"].dtype == disttorch.float32
    opt.step()
    assert float(loaded["step"]) == 1.0


def test_load_state_dict_rejects_mismatched_groups():
    a, b = disttorch.zeros(2, requires_grad=True), disttorch.zeros(2, requires_grad=True)
    two_params = disttorch.optim.SGD([a, b], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="doesn't match the size of optimizer's group"):
        disttorch.optim.SGD([a], lr=0.1).load_state_dict(two_params)
    two_groups = disttorch.optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="different number of parameter groups"):
        disttorch.optim.SGD([a, b], lr=0.1).load_state_dict(two_groups)


def test_param_groups_with_own_hyperparameters_match_torch():
    values = _initial_values()
    ours = [disttorch.tensor(v, requires_grad=True) for v in values]
    theirs = [torch.tensor(v, requires_grad=True) for v in values]

    def build(lib, params):
        opt = lib.optim.SGD([{"params": params[:1]}, {"params": params[1:2], "lr": 0.01, "nesterov": True}],
                            lr=0.1, momentum=0.9)
        opt.add_param_group({"params": params[2:], "momentum": 0.0, "weight_decay": 0.5})
        return opt

    our_opt, their_opt = build(disttorch, ours), build(torch, theirs)
    assert our_opt.param_groups[2]["lr"] == 0.1
    assert our_opt.state_dict()["param_groups"] == their_opt.state_dict()["param_groups"]
    for step in range(6):
        for index, (a, b) in enumerate(zip(ours, theirs)):
            a.grad = disttorch.from_numpy(_gradient(a.detach().numpy(), step, index))
            b.grad = torch.from_numpy(_gradient(b.detach().numpy(), step, index))
        our_opt.step()
        their_opt.step()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_autograd_loop_with_closure_matches_torch():
    values = _initial_values()[0]
    ours = disttorch.tensor(values, requires_grad=True)
    theirs = torch.tensor(values, requires_grad=True)
    our_opt = disttorch.optim.Adam([ours], lr=0.1)
    their_opt = torch.optim.Adam([theirs], lr=0.1)

    def closure_for(param, opt):
        def closure():
            opt.zero_grad()
            loss = ((param - 0.25) ** 2).sum()
            loss.backward()
            return loss
        return closure

    for _ in range(10):
        our_loss = our_opt.step(closure_for(ours, our_opt))
        their_loss = their_opt.step(closure_for(theirs, their_opt))
        assert our_loss.item() == pytest.approx(their_loss.item(), rel=1e-10)
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-10)


def test_step_bumps_version_so_saved_tensors_notice():
    param = disttorch.ones(3, requires_grad=True)
    before = param._version
    param.grad = disttorch.ones(3)
    disttorch.optim.SGD([param], lr=0.1).step()
    assert param._version == before + 1


def test_zero_grad_sets_none_or_zeroes():
    param = disttorch.ones(3, requires_grad=True)
    opt = disttorch.optim.SGD([param], lr=0.1)
    param.grad = disttorch.ones(3)
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(param.grad.numpy(), np.zeros(3))
    opt.zero_grad()
    assert param.grad is None


def test_params_as_generator_and_named_pairs():
    params = [disttorch.zeros(2, requires_grad=True) for _ in range(3)]
    assert len(disttorch.optim.SGD(p for p in params).param_groups[0]["params"]) == 3
    named = disttorch.optim.SGD([("a", params[0]), ("b", params[1])])
    assert named.param_groups[0]["param_names"] == ["a", "b"]
    assert all(x is y for x, y in zip(named.param_groups[0]["params"], params[:2], strict=True))
    assert named.state_dict()["param_groups"][0]["param_names"] == ["a", "b"]


def test_optimizes_nn_parameters():
    parameter_cls = pytest.importorskip("disttorch.nn.parameter").Parameter
    weight = parameter_cls(disttorch.ones(2, 2))
    opt = disttorch.optim.SGD([weight], lr=0.5)
    (weight * 3.0).sum().backward()
    opt.step()
    np.testing.assert_allclose(weight.detach().numpy(), np.full((2, 2), -0.5))


def test_repr_lists_group_hyperparameters_like_torch():
    ours = disttorch.optim.SGD([disttorch.zeros(1, requires_grad=True)], lr=0.5, momentum=0.1)
    theirs = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5, momentum=0.1)
    assert repr(ours) == repr(theirs)


def _constructor_errors(lib):
    p = lib.zeros(3, requires_grad=True)
    optim = lib.optim
    return [
        lambda: optim.SGD([p], lr=-1),
        lambda: optim.SGD([p], momentum=-1),
        lambda: optim.SGD([p], weight_decay=-0.5),
        lambda: optim.SGD([p], nesterov=True),
        lambda: optim.SGD([p], momentum=0.9, dampening=0.1, nesterov=True),
        lambda: optim.Adam([p], lr=-0.1),
        lambda: optim.Adam([p], eps=-1),
        lambda: optim.Adam([p], betas=(1.0, 0.9)),
        lambda: optim.Adam([p], betas=(0.9, -0.1)),
        lambda: optim.Adam([p], weight_decay=-1),
        lambda: optim.AdamW([p], betas=(0.9, 1.5)),
        lambda: optim.RMSprop([p], alpha=-1),
        lambda: optim.RMSprop([p], momentum=-1),
        lambda: optim.RMSprop([p], eps=-1),
        lambda: optim.RMSprop([p], weight_decay=-1),
        lambda: optim.Adagrad([p], lr_decay=-1),
        lambda: optim.Adagrad([p], initial_accumulator_value=-1),
        lambda: optim.Adagrad([p], eps=-1),
        lambda: optim.Adagrad([p], weight_decay=-1),
        lambda: optim.NAdam([p], lr=-1),
        lambda: optim.NAdam([p], betas=(0.9, 1.0)),
        lambda: optim.NAdam([p], momentum_decay=-1),
        lambda: optim.NAdam([p], weight_decay=-1),
        lambda: optim.RAdam([p], eps=-1),
        lambda: optim.RAdam([p], betas=(-0.1, 0.9)),
        lambda: optim.Adamax([p], betas=(0.9, 1.0)),
        lambda: optim.Adamax([p], weight_decay=-1),
        lambda: optim.Rprop([p], lr=-1),
        lambda: optim.Rprop([p], etas=(1.5, 1.2)),
        lambda: optim.Rprop([p], etas=(0.5, 0.9)),
        lambda: optim.ASGD([p], lr=-1),
        lambda: optim.ASGD([p], weight_decay=-1),
        lambda: optim.SGD([]),
        lambda: optim.SGD([{"params": [p]}, {"params": p}]),
        lambda: optim.SGD([(p * 2)]),
        lambda: optim.SGD([{"params": {p}}]),
    ]


@pytest.mark.parametrize("index", range(len(_constructor_errors(disttorch))))
def test_constructor_errors_match_torch(index):
    with pytest.raises(Exception) as theirs:
        _constructor_errors(torch)[index]()
    with pytest.raises(type(theirs.value)) as ours:
        _constructor_errors(disttorch)[index]()
    assert str(ours.value) == str(theirs.value)


def test_single_tensor_params_is_a_type_error():
    with pytest.raises(TypeError, match="should be an iterable of Tensors or dicts"):
        disttorch.optim.SGD(disttorch.zeros(3, requires_grad=True))


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in ("SGD", "Adam", "AdamW")], ids=_case_id)
def test_foreach_path_is_bit_identical_to_the_per_parameter_loop(case):
    name, kwargs = case
    values = [v.astype(np.float32) for v in _initial_values()]
    runs = {}
    for foreach in (True, False):
        params = [disttorch.tensor(v, requires_grad=True) for v in values]
        runs[foreach] = (params, getattr(disttorch.optim, name)(params, foreach=foreach, **kwargs))
    for step in range(6):
        for params, optimizer in runs.values():
            for index, p in enumerate(params):
                skipped = index == 2 and step == 3  # unequal step counts afterwards: the loop takes over
                p.grad = None if skipped else disttorch.from_numpy(
                    _gradient(p.detach().numpy(), step, index).astype(np.float32))
            optimizer.step()
        for fast, slow in zip(runs[True][0], runs[False][0]):
            np.testing.assert_array_equal(fast.detach().numpy(), slow.detach().numpy())
    fast_state, slow_state = runs[True][1].state_dict()["state"], runs[False][1].state_dict()["state"]
    for index, state in slow_state.items():
        for key, value in state.items():
            np.testing.assert_array_equal(fast_state[index][key].numpy(), value.numpy())
    if name != "SGD" or "momentum" in kwargs:
        assert runs[True][1]._flat_state_cache  # the state does live in flat buffers on the foreach path
    assert not getattr(runs[False][1], "_flat_state_cache", None)


@pytest.mark.skipif(not disttorch.cuda.is_available(), reason="needs cupy and a visible GPU")
@pytest.mark.parametrize("name,kwargs", [("AdamW", dict(lr=0.05)), ("SGD", dict(lr=0.05, momentum=0.9))])
def test_cuda_parameters_take_the_foreach_path_by_default_with_the_loops_numbers(name, kwargs):
    values = [v.astype(np.float32) for v in _initial_values()]
    on_gpu = [disttorch.tensor(v, device="cuda", requires_grad=True) for v in values]
    on_cpu = [disttorch.tensor(v, requires_grad=True) for v in values]
    gpu_opt = getattr(disttorch.optim, name)(on_gpu, **kwargs)
    cpu_opt = getattr(disttorch.optim, name)(on_cpu, **kwargs)
    for step in range(4):
        for index, (g, c) in enumerate(zip(on_gpu, on_cpu)):
            grad = _gradient(c.detach().numpy(), step, index).astype(np.float32)
            g.grad, c.grad = disttorch.tensor(grad, device="cuda"), disttorch.from_numpy(grad)
        gpu_opt.step()
        cpu_opt.step()
    assert gpu_opt._flat_state_cache and not getattr(cpu_opt, "_flat_state_cache", None)
    for g, c in zip(on_gpu, on_cpu):
        np.testing.assert_allclose(g.detach().cpu().numpy(), c.detach().numpy(), rtol=1e-5, atol=1e-6)
