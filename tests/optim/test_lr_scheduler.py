"""Learning-rate (and momentum) sequences compared with torch.optim.lr_scheduler over 30 steps."""
import math

import pytest

import disttorch

torch = pytest.importorskip("torch")

STEPS = 30


def _optimizer(lib, kind="SGD"):
    params = [lib.zeros(2, requires_grad=True), lib.zeros(3, requires_grad=True)]
    groups = [{"params": params[:1]}, {"params": params[1:], "lr": 0.01}]
    if kind == "Adam":
        return lib.optim.Adam(groups, lr=0.1)
    return lib.optim.SGD(groups, lr=0.1, momentum=0.9)


class _Decay:
    """A callable object: its __dict__ is what LambdaLR's state_dict saves."""

    def __init__(self, rate):
        self.rate = rate

    def __call__(self, epoch):
        return self.rate ** epoch


def _schedulers(module):
    return {
        "StepLR": lambda o: module.StepLR(o, step_size=4, gamma=0.5),
        "MultiStepLR": lambda o: module.MultiStepLR(o, milestones=[3, 7, 7, 20], gamma=0.3),
        "ExponentialLR": lambda o: module.ExponentialLR(o, gamma=0.9),
        "CosineAnnealingLR": lambda o: module.CosineAnnealingLR(o, T_max=7, eta_min=0.001),
        "LambdaLR": lambda o: module.LambdaLR(o, lr_lambda=[lambda e: 1 / (e + 1), _Decay(0.95)]),
        "MultiplicativeLR": lambda o: module.MultiplicativeLR(o, lr_lambda=lambda e: 0.97),
        "LinearLR": lambda o: module.LinearLR(o, start_factor=0.2, end_factor=0.9, total_iters=8),
        "ConstantLR": lambda o: module.ConstantLR(o, factor=0.4, total_iters=6),
        "PolynomialLR": lambda o: module.PolynomialLR(o, total_iters=20, power=2.0),
        "OneCycleLR-cos": lambda o: module.OneCycleLR(o, max_lr=[1.0, 0.2], total_steps=STEPS + 1),
        "OneCycleLR-linear-3phase": lambda o: module.OneCycleLR(
            o, max_lr=0.5, epochs=4, steps_per_epoch=8, anneal_strategy="linear", three_phase=True,
            pct_start=0.25),
        "SequentialLR": lambda o: module.SequentialLR(
            o, [module.LinearLR(o, start_factor=0.1, total_iters=5), module.ExponentialLR(o, gamma=0.9),
                module.CosineAnnealingLR(o, T_max=5)], milestones=[5, 15]),
        "ChainedScheduler": lambda o: module.ChainedScheduler(
            [module.ConstantLR(o, factor=0.5, total_iters=4), module.ExponentialLR(o, gamma=0.9)]),
    }


def _momenta(optimizer):
    return [group["betas"][0] if "betas" in group else group["momentum"] for group in optimizer.param_groups]


def _trace(lib, name, kind, steps=STEPS):
    optimizer = _optimizer(lib, kind)
    scheduler = _schedulers(lib.optim.lr_scheduler)[name](optimizer)
    trace = [(scheduler.get_last_lr(), _momenta(optimizer))]
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        trace.append((scheduler.get_last_lr(), _momenta(optimizer)))
    return trace


@pytest.mark.parametrize("kind", ["SGD", "Adam"])
@pytest.mark.parametrize("name", list(_schedulers(disttorch.optim.lr_scheduler)))
def test_sequence_matches_torch(name, kind):
    ours, theirs = _trace(disttorch, name, kind), _trace(torch, name, kind)
    for step, ((our_lrs, our_momenta), (their_lrs, their_momenta)) in enumerate(zip(ours, theirs)):
        assert our_lrs == pytest.approx(their_lrs, rel=1e-12, abs=1e-15), f"lr at step {step}"
        assert our_momenta == pytest.approx(their_momenta, rel=1e-12), f"momentum at step {step}"


@pytest.mark.parametrize("name", ["StepLR", "CosineAnnealingLR", "LambdaLR", "OneCycleLR-cos", "SequentialLR",
                                  "ChainedScheduler"])
def test_state_dict_round_trip_continues_identically(name):
    factory = _schedulers(disttorch.optim.lr_scheduler)[name]
    optimizer = _optimizer(disttorch)
    scheduler = factory(optimizer)
    for _ in range(10):
        optimizer.step()
        scheduler.step()
    saved_optimizer, saved_scheduler = optimizer.state_dict(), scheduler.state_dict()
    assert "optimizer" not in saved_scheduler

    resumed_optimizer = _optimizer(disttorch)
    resumed = factory(resumed_optimizer)
    resumed_optimizer.load_state_dict(saved_optimizer)
    resumed.load_state_dict(saved_scheduler)
    for _ in range(10):
        for opt, sched in ((optimizer, scheduler), (resumed_optimizer, resumed)):
            opt.step()
            sched.step()
        assert resumed.get_last_lr() == scheduler.get_last_lr()


def test_lambda_state_dict_saves_callable_objects_only():
    optimizer = _optimizer(disttorch)
    scheduler = disttorch.optim.lr_scheduler.LambdaLR(optimizer, [lambda e: 1.0, _Decay(0.5)])
    assert scheduler.state_dict()["lr_lambdas"] == [None, {"rate": 0.5}]


def test_initial_lr_recorded_and_required_when_resuming():
    optimizer = _optimizer(disttorch)
    with pytest.raises(KeyError, match="initial_lr"):
        disttorch.optim.lr_scheduler.StepLR(optimizer, step_size=2, last_epoch=3)
    disttorch.optim.lr_scheduler.StepLR(optimizer, step_size=2)
    assert [g["initial_lr"] for g in optimizer.param_groups] == [0.1, 0.01]


def test_closed_form_step_with_epoch_matches_torch():
    def lrs(lib):
        optimizer = _optimizer(lib)
        scheduler = lib.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)
        with pytest.warns(UserWarning):
            scheduler.step(7)
        return scheduler.get_last_lr()

    assert lrs(disttorch) == pytest.approx(lrs(torch), rel=1e-12)


METRICS = [5.0, 4.0, 4.0, 4.0, 3.9999, 4.0, 4.1, 4.2, 4.3, 3.0, 3.5, 3.5, 3.5, 3.5, 3.5, 3.5, 3.5, 3.5, 3.5,
           3.5, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]

PLATEAU_CONFIGS = [
    dict(patience=2),
    dict(mode="max", factor=0.5, patience=1, threshold=0.01, threshold_mode="abs", cooldown=2),
    dict(patience=0, cooldown=1, min_lr=[0.02, 0.0001], factor=0.3),
    dict(patience=1, threshold=0.3, threshold_mode="rel", min_lr=0.005),
]


@pytest.mark.parametrize("config", PLATEAU_CONFIGS, ids=str)
def test_reduce_lr_on_plateau_matches_torch(config):
    def trace(lib):
        optimizer = _optimizer(lib)
        scheduler = lib.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **config)
        out = []
        for metric in METRICS:
            optimizer.step()
            scheduler.step(lib.tensor(metric))
            out.append(scheduler.get_last_lr())
        return out

    ours, theirs = trace(disttorch), trace(torch)
    for step, (a, b) in enumerate(zip(ours, theirs)):
        assert a == pytest.approx(b, rel=1e-12), f"step {step}"
    assert ours[-1] != ours[0]


def test_reduce_lr_on_plateau_state_dict_round_trip():
    optimizer = _optimizer(disttorch)
    scheduler = disttorch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", patience=1)
    for metric in METRICS[:5]:
        scheduler.step(metric)
    resumed = disttorch.optim.lr_scheduler.ReduceLROnPlateau(_optimizer(disttorch))
    resumed.load_state_dict(scheduler.state_dict())
    assert (resumed.mode, resumed.patience, resumed.best, resumed.mode_worse) == ("max", 1, 5.0, -math.inf)


def _scheduler_errors(lib):
    module = lib.optim.lr_scheduler
    optimizer = _optimizer(lib)
    other = _optimizer(lib)
    return [
        lambda: module.StepLR(object(), step_size=1),
        lambda: module.ConstantLR(optimizer, factor=1.5),
        lambda: module.LinearLR(optimizer, start_factor=0),
        lambda: module.LinearLR(optimizer, end_factor=2.0),
        lambda: module.LambdaLR(optimizer, [lambda e: 1.0]),
        lambda: module.MultiplicativeLR(optimizer, 0.5),
        lambda: module.OneCycleLR(optimizer, max_lr=1.0),
        lambda: module.OneCycleLR(optimizer, max_lr=1.0, total_steps=0),
        lambda: module.OneCycleLR(optimizer, max_lr=1.0, total_steps=10, pct_start=1),
        lambda: module.OneCycleLR(optimizer, max_lr=1.0, total_steps=10, anneal_strategy="exp"),
        lambda: module.OneCycleLR(optimizer, max_lr=[1.0], total_steps=10),
        lambda: module.ReduceLROnPlateau(optimizer, factor=1.0),
        lambda: module.ReduceLROnPlateau(optimizer, mode="up"),
        lambda: module.ReduceLROnPlateau(optimizer, threshold_mode="x"),
        lambda: module.ReduceLROnPlateau(optimizer, min_lr=[0.1]),
        lambda: module.SequentialLR(optimizer, [module.StepLR(optimizer, 2)], milestones=[3]),
        lambda: module.SequentialLR(optimizer, [module.ReduceLROnPlateau(optimizer)], milestones=[]),
        lambda: module.SequentialLR(optimizer, [], milestones=[]),
        lambda: module.ChainedScheduler([module.StepLR(optimizer, 2), module.StepLR(other, 2)]),
    ]


@pytest.mark.parametrize("index", range(len(_scheduler_errors(disttorch))))
def test_scheduler_errors_match_torch(index):
    with pytest.raises(Exception) as theirs:
        _scheduler_errors(torch)[index]()
    with pytest.raises(type(theirs.value)) as ours:
        _scheduler_errors(disttorch)[index]()
    if "which is different from" not in str(theirs.value):  # that message embeds each library's repr
        assert str(ours.value) == str(theirs.value)


def test_one_cycle_refuses_to_step_past_total_steps():
    optimizer = _optimizer(disttorch)
    scheduler = disttorch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1.0, total_steps=3)
    for _ in range(3):
        scheduler.step()
    with pytest.raises(ValueError, match="Tried to step 4 times"):
        scheduler.step()


def _params(optimizer):
    return [p for group in optimizer.param_groups for p in group["params"]]


def _train_step(optimizer, scheduler):
    for p in _params(optimizer):
        p.grad = disttorch.ones(p.shape)
    optimizer.step()
    scheduler.step()


@pytest.mark.parametrize("name", ["MultiStepLR", "OneCycleLR-cos", "SequentialLR"])
def test_checkpoint_through_save_and_load_resumes(tmp_path, name):
    factory = _schedulers(disttorch.optim.lr_scheduler)[name]
    optimizer = _optimizer(disttorch, "Adam")
    scheduler = factory(optimizer)
    for _ in range(5):
        _train_step(optimizer, scheduler)
    path = tmp_path / "checkpoint.pt"
    disttorch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, path)

    checkpoint = disttorch.load(path)
    resumed_optimizer = _optimizer(disttorch, "Adam")
    for ours, saved in zip(_params(resumed_optimizer), _params(optimizer)):
        ours._data[...] = saved._data
    resumed = factory(resumed_optimizer)
    resumed_optimizer.load_state_dict(checkpoint["optimizer"])
    resumed.load_state_dict(checkpoint["scheduler"])
    for _ in range(10):
        _train_step(optimizer, scheduler)
        _train_step(resumed_optimizer, resumed)
        assert resumed.get_last_lr() == scheduler.get_last_lr()
    for ours, reference in zip(_params(resumed_optimizer), _params(optimizer)):
        assert (ours.detach().numpy() == reference.detach().numpy()).all()
