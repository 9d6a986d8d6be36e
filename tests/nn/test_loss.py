"""Losses against PyTorch (values and gradients, float64), gradchecks, and PyTorch's errors."""
import numpy as np
import pytest
from nn_testing import assert_close, pair_inputs

import disttorch
import disttorch.nn.functional as F
from disttorch import nn
from disttorch.autograd import gradcheck

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)
LOGITS = RNG.standard_normal((6, 4)) * 3
LOGITS_KDIM = RNG.standard_normal((2, 4, 3, 2))
LABELS = np.array([0, 3, 1, 1, 2, 3])
LABELS_IGNORED = np.array([0, -100, 1, 1, -100, 3])
LABELS_KDIM = RNG.integers(0, 4, size=(2, 3, 2))
SOFT = RNG.dirichlet(np.ones(4), size=6)
CLASS_WEIGHT = np.array([0.5, 2.0, 1.0, 3.0])
PRED = RNG.standard_normal((5, 3))
TARGET = RNG.standard_normal((5, 3)) * 2
PROBS = RNG.uniform(0.05, 0.95, size=(5, 3))
BINARY = RNG.integers(0, 2, size=(5, 3)).astype(np.float64)
LOG_PROBS = np.log(RNG.dirichlet(np.ones(3), size=5))

# (name, loss function on (lib, input, target), input, target, target is differentiable)
CASES = [
    ("ce", lambda m, x, t: m.nn.functional.cross_entropy(x, t), LOGITS, LABELS, False),
    ("ce_sum", lambda m, x, t: m.nn.functional.cross_entropy(x, t, reduction="sum"), LOGITS, LABELS, False),
    ("ce_none", lambda m, x, t: m.nn.functional.cross_entropy(x, t, reduction="none"), LOGITS, LABELS, False),
    ("ce_weight", lambda m, x, t: m.nn.functional.cross_entropy(x, t, weight=m.tensor(CLASS_WEIGHT)), LOGITS,
     LABELS, False),
    ("ce_ignore", lambda m, x, t: m.nn.functional.cross_entropy(x, t), LOGITS, LABELS_IGNORED, False),
    ("ce_ignore_custom", lambda m, x, t: m.nn.functional.cross_entropy(x, t, ignore_index=3), LOGITS, LABELS,
     False),
    ("ce_smooth", lambda m, x, t: m.nn.functional.cross_entropy(x, t, label_smoothing=0.2), LOGITS,
     LABELS_IGNORED, False),
    ("ce_smooth_weight", lambda m, x, t: m.nn.functional.cross_entropy(
        x, t, weight=m.tensor(CLASS_WEIGHT), label_smoothing=0.3), LOGITS, LABELS_IGNORED, False),
    ("ce_smooth_weight_none", lambda m, x, t: m.nn.functional.cross_entropy(
        x, t, weight=m.tensor(CLASS_WEIGHT), label_smoothing=0.3, reduction="none"), LOGITS, LABELS_IGNORED, False),
    ("ce_kdim", lambda m, x, t: m.nn.functional.cross_entropy(x, t), LOGITS_KDIM, LABELS_KDIM, False),
    ("ce_kdim_none", lambda m, x, t: m.nn.functional.cross_entropy(x, t, reduction="none"), LOGITS_KDIM,
     LABELS_KDIM, False),
    ("ce_unbatched", lambda m, x, t: m.nn.functional.cross_entropy(x, t), LOGITS[0], np.array(2), False),
    ("ce_soft", lambda m, x, t: m.nn.functional.cross_entropy(x, t), LOGITS, SOFT, True),
    ("ce_soft_weight_smooth", lambda m, x, t: m.nn.functional.cross_entropy(
        x, t, weight=m.tensor(CLASS_WEIGHT), label_smoothing=0.1, reduction="sum"), LOGITS, SOFT, True),
    ("ce_soft_none", lambda m, x, t: m.nn.functional.cross_entropy(x, t, reduction="none"), LOGITS, SOFT, True),
    ("nll", lambda m, x, t: m.nn.functional.nll_loss(x, t), LOG_PROBS, LABELS[:5] % 3, False),
    ("nll_weight_ignore", lambda m, x, t: m.nn.functional.nll_loss(
        x, t, weight=m.tensor(CLASS_WEIGHT[:3]), ignore_index=2), LOG_PROBS, LABELS[:5] % 3, False),
    ("nll_none", lambda m, x, t: m.nn.functional.nll_loss(x, t, reduction="none"), LOG_PROBS, LABELS[:5] % 3,
     False),
    ("mse", lambda m, x, t: m.nn.functional.mse_loss(x, t), PRED, TARGET, True),
    ("mse_sum", lambda m, x, t: m.nn.functional.mse_loss(x, t, reduction="sum"), PRED, TARGET, True),
    ("l1_none", lambda m, x, t: m.nn.functional.l1_loss(x, t, reduction="none"), PRED, TARGET, True),
    ("smooth_l1", lambda m, x, t: m.nn.functional.smooth_l1_loss(x, t, beta=0.7), PRED, TARGET, True),
    ("smooth_l1_beta0", lambda m, x, t: m.nn.functional.smooth_l1_loss(x, t, beta=0.0), PRED, TARGET, True),
    ("huber", lambda m, x, t: m.nn.functional.huber_loss(x, t, delta=1.5), PRED, TARGET, True),
    ("bce", lambda m, x, t: m.nn.functional.binary_cross_entropy(x, t), PROBS, BINARY, True),
    ("bce_weight", lambda m, x, t: m.nn.functional.binary_cross_entropy(x, t, weight=m.tensor([1.0, 2.0, 0.5])),
     PROBS, PROBS[::-1].copy(), True),
    ("bce_logits", lambda m, x, t: m.nn.functional.binary_cross_entropy_with_logits(x, t), PRED * 10, BINARY, True),
    ("bce_logits_pos_weight", lambda m, x, t: m.nn.functional.binary_cross_entropy_with_logits(
        x, t, weight=m.tensor([1.0, 2.0, 0.5]), pos_weight=m.tensor([3.0, 1.0, 0.2])), PRED, PROBS, True),
    ("kl", lambda m, x, t: m.nn.functional.kl_div(x, t, reduction="batchmean"), LOG_PROBS,
     np.where(BINARY > 0, PROBS, 0.0), False),
    ("kl_log_target", lambda m, x, t: m.nn.functional.kl_div(x, t, reduction="sum", log_target=True), LOG_PROBS,
     np.log(PROBS), True),
    ("kl_none", lambda m, x, t: m.nn.functional.kl_div(x, t, reduction="none"), LOG_PROBS, PROBS, True),
    ("soft_margin", lambda m, x, t: m.nn.functional.soft_margin_loss(x, t), PRED, np.sign(TARGET), False),
    ("poisson", lambda m, x, t: m.nn.functional.poisson_nll_loss(x, t), PRED, np.abs(TARGET), True),
    ("poisson_full", lambda m, x, t: m.nn.functional.poisson_nll_loss(x, t, log_input=False, full=True),
     PROBS, np.abs(TARGET) * 2, False),
    ("hinge_embedding", lambda m, x, t: m.nn.functional.hinge_embedding_loss(x, t, margin=0.5), PRED,
     np.sign(TARGET), False),
    ("multilabel_soft_margin", lambda m, x, t: m.nn.functional.multilabel_soft_margin_loss(
        x, t, weight=m.tensor([1.0, 0.5, 2.0])), PRED, BINARY, False),
    ("gaussian_nll", lambda m, x, t: m.nn.functional.gaussian_nll_loss(x, t, m.ones(5, 1) * 0.7, full=True), PRED,
     TARGET, True),
    ("gaussian_nll_var_grad", lambda m, x, t: m.nn.functional.gaussian_nll_loss(t, m.zeros(5, 3), x * x + 0.1,
                                                                                reduction="sum"), PRED, TARGET, True),
]


@pytest.mark.filterwarnings("ignore:reduction")
@pytest.mark.parametrize("name,loss_fn,x,t,target_grad", CASES, ids=[c[0] for c in CASES])
def test_loss_matches_torch(name, loss_fn, x, t, target_grad):
    ours_x, ref_x = pair_inputs(torch, x)
    ours_t, ref_t = pair_inputs(torch, t, requires_grad=target_grad)
    ours, ref = loss_fn(disttorch, ours_x, ours_t), loss_fn(torch, ref_x, ref_t)
    assert tuple(ours.shape) == tuple(ref.shape)
    assert ours.dtype == disttorch.float64
    assert_close(ours, ref, rtol=1e-7)
    probe = np.random.default_rng(1).standard_normal(tuple(ref.shape))
    ours.backward(disttorch.tensor(probe))
    ref.backward(torch.tensor(probe))
    assert_close(ours_x.grad, ref_x.grad, rtol=1e-6, atol=1e-9, err_msg="input gradient")
    if target_grad:
        assert_close(ours_t.grad, ref_t.grad, rtol=1e-6, atol=1e-9, err_msg="target gradient")


@pytest.mark.filterwarnings("ignore:reduction")
@pytest.mark.parametrize("name,loss_fn,x,t,target_grad", CASES[::3], ids=[c[0] for c in CASES[::3]])
def test_loss_gradcheck(name, loss_fn, x, t, target_grad):
    ours_x = disttorch.tensor(x, requires_grad=True)
    ours_t = disttorch.tensor(t, requires_grad=target_grad)
    assert gradcheck(lambda a, b: loss_fn(disttorch, a, b), (ours_x, ours_t))


def test_cross_entropy_is_stable_for_huge_logits():
    x = disttorch.tensor([[1000.0, -1000.0, 0.0]], requires_grad=True)
    loss = F.cross_entropy(x, disttorch.tensor([1]))
    assert np.isfinite(loss.item()) and abs(loss.item() - 2000.0) < 1e-3
    loss.backward()
    assert np.all(np.isfinite(x.grad.numpy()))


def test_cross_entropy_float32_stays_float32():
    x = disttorch.randn(4, 3, requires_grad=True)
    loss = nn.CrossEntropyLoss()(x, disttorch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert loss.dtype == disttorch.float32 and x.grad.dtype == disttorch.float32


def test_cross_entropy_all_ignored_gives_nan_like_torch():
    x = disttorch.randn(2, 3)
    assert np.isnan(F.cross_entropy(x, disttorch.tensor([-100, -100])).item())


def test_bce_clamps_log_at_minus_100():
    loss = F.binary_cross_entropy(disttorch.tensor([0.0, 1.0]), disttorch.tensor([1.0, 0.0]))
    assert loss.item() == pytest.approx(100.0)


def test_loss_errors_match_torch():
    with pytest.raises(ValueError, match=r"Expected input batch_size \(3\) to match target batch_size \(4\)\."):
        F.cross_entropy(disttorch.randn(3, 5), disttorch.tensor([0, 1, 2, 3]))
    with pytest.raises(IndexError, match="Target 7 is out of bounds."):
        F.cross_entropy(disttorch.randn(2, 5), disttorch.tensor([0, 7]))
    with pytest.raises(RuntimeError, match="expected scalar type Long but found Float"):
        F.cross_entropy(disttorch.randn(2, 5), disttorch.tensor([0.0, 1.0]))
    with pytest.raises(RuntimeError, match="label_smoothing must be between 0.0 and 1.0"):
        F.cross_entropy(disttorch.randn(2, 5), disttorch.tensor([0, 1]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="is not a valid value for reduction"):
        F.mse_loss(disttorch.randn(2), disttorch.randn(2), reduction="avg")
    with pytest.raises(ValueError, match="must be the same as input size"):
        F.binary_cross_entropy_with_logits(disttorch.randn(3, 1), disttorch.randn(3))
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        F.binary_cross_entropy(disttorch.tensor([1.5]), disttorch.tensor([1.0]))
    with pytest.raises(RuntimeError, match="weight tensor should be defined"):
        F.cross_entropy(disttorch.randn(2, 5), disttorch.tensor([0, 1]), weight=disttorch.ones(3))


def test_mse_warns_on_broadcasting_target():
    with pytest.warns(UserWarning, match="different to the input size"):
        F.mse_loss(disttorch.randn(3, 1), disttorch.randn(3))


def test_loss_modules_store_options_and_buffers():
    ce = nn.CrossEntropyLoss(weight=disttorch.ones(3), ignore_index=1, label_smoothing=0.1)
    assert list(ce.state_dict()) == list(torch.nn.CrossEntropyLoss(weight=torch.ones(3)).state_dict())
    assert ce.ignore_index == 1 and ce.reduction == "mean"
    bce = nn.BCEWithLogitsLoss(pos_weight=disttorch.ones(2))
    assert list(bce.state_dict()) == list(torch.nn.BCEWithLogitsLoss(pos_weight=torch.ones(2)).state_dict())
    with pytest.warns(UserWarning, match="size_average and reduce"):
        assert nn.MSELoss(size_average=False).reduction == "sum"


@pytest.mark.parametrize("cls,args", [("L1Loss", {}), ("MSELoss", {"reduction": "sum"}),
                                      ("SmoothL1Loss", {"beta": 0.5}), ("HuberLoss", {"delta": 2.0}),
                                      ("KLDivLoss", {"reduction": "batchmean"}), ("SoftMarginLoss", {})])
def test_regression_loss_modules_match_torch(cls, args):
    ours = getattr(nn, cls)(**args)(disttorch.tensor(PRED), disttorch.tensor(TARGET))
    ref = getattr(torch.nn, cls)(**args)(torch.tensor(PRED), torch.tensor(TARGET))
    assert_close(ours, ref, rtol=1e-7)


def test_classification_loss_modules_match_torch():
    w = CLASS_WEIGHT
    pairs = [
        (nn.CrossEntropyLoss(weight=disttorch.tensor(w), label_smoothing=0.1),
         torch.nn.CrossEntropyLoss(weight=torch.tensor(w), label_smoothing=0.1), LOGITS, LABELS),
        (nn.NLLLoss(reduction="sum"), torch.nn.NLLLoss(reduction="sum"), LOGITS, LABELS),
        (nn.BCELoss(), torch.nn.BCELoss(), PROBS, BINARY),
        (nn.BCEWithLogitsLoss(pos_weight=disttorch.tensor([2.0, 1.0, 1.0])),
         torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0, 1.0, 1.0])), PRED, BINARY),
    ]
    for ours, ref, x, t in pairs:
        assert_close(ours(disttorch.tensor(x), disttorch.tensor(t)), ref(torch.tensor(x), torch.tensor(t)),
                     rtol=1e-7, err_msg=type(ours).__name__)


def _triple(rng, shape):
    return [pair_inputs(torch, rng.standard_normal(shape)) for _ in range(3)]


@pytest.mark.parametrize("name", ["margin_ranking", "cosine_embedding", "triplet", "triplet_swap_p1",
                                  "cosine_similarity", "pairwise_distance"])
def test_three_input_losses_and_distances_match_torch(name):
    rng = np.random.default_rng(5)
    (a, a_ref), (b, b_ref), (c, c_ref) = _triple(rng, (6, 4))
    sign = np.where(rng.standard_normal(6) > 0, 1.0, -1.0)
    calls = {
        "margin_ranking": lambda m, x, y, z: m.nn.functional.margin_ranking_loss(
            x[:, 0], y[:, 0], m.tensor(sign), margin=0.3),
        "cosine_embedding": lambda m, x, y, z: m.nn.functional.cosine_embedding_loss(x, y, m.tensor(sign), margin=0.1),
        "triplet": lambda m, x, y, z: m.nn.TripletMarginLoss(margin=2.0)(x, y, z),
        "triplet_swap_p1": lambda m, x, y, z: m.nn.functional.triplet_margin_loss(x, y, z, p=1.0, swap=True,
                                                                                  reduction="none"),
        "cosine_similarity": lambda m, x, y, z: m.nn.CosineSimilarity(dim=1)(x, y),
        "pairwise_distance": lambda m, x, y, z: m.nn.PairwiseDistance(keepdim=True)(x, y),
    }
    ours, ref = calls[name](disttorch, a, b, c), calls[name](torch, a_ref, b_ref, c_ref)
    assert_close(ours, ref)
    probe = np.random.default_rng(1).standard_normal(tuple(ref.shape))
    ours.backward(disttorch.tensor(probe))
    ref.backward(torch.tensor(probe))
    for x, x_ref in ((a, a_ref), (b, b_ref), (c, c_ref)):
        if x_ref.grad is not None:
            assert_close(x.grad, x_ref.grad, err_msg=name)


def test_gaussian_nll_rejects_bad_variance():
    with pytest.raises(ValueError, match="negative"):
        F.gaussian_nll_loss(disttorch.zeros(2, 2), disttorch.zeros(2, 2), -disttorch.ones(2, 2))
    with pytest.raises(ValueError, match="incorrect size"):
        F.gaussian_nll_loss(disttorch.zeros(2, 3), disttorch.zeros(2, 3), disttorch.ones(3, 2))
