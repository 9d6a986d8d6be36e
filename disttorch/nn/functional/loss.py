"""Loss functions. Cross-entropy and NLL are single fused nodes; the elementwise losses share one node type
that computes the loss and its local derivatives in the forward pass."""
import functools
import math
import warnings

import numpy as np

from ...core.autocast_state import full_precision
from ...core.autograd import Function
from ...core.backend import get_array_module
from ...core.ops import elementwise as ew
from ...core.ops._util import sum_to
from ...core.ops.reduction import max_keepdims
from .activation import logsigmoid
from .distance import pairwise_distance

_REDUCTIONS = ("none", "mean", "sum")


def legacy_reduction(size_average, reduce):
    """Map the deprecated size_average/reduce flags to a reduction string."""
    warnings.warn("size_average and reduce args will be deprecated, please use reduction='mean' (or 'sum', "
                  "'none') instead.", stacklevel=3)
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


def _resolve_reduction(reduction, size_average=None, reduce=None, allowed=_REDUCTIONS):
    if size_average is not None or reduce is not None:
        reduction = legacy_reduction(size_average, reduce)
    if reduction not in allowed:
        raise ValueError(f"{reduction} is not a valid value for reduction; use one of {', '.join(allowed)}")
    return reduction


def _scalar(xp, value, dtype):
    return xp.asarray(value, dtype=dtype)


def _dtype_name(array):
    return {"float32": "Float", "float64": "Double", "float16": "Half", "int64": "Long", "int32": "Int",
            "bool": "Bool", "uint8": "Byte"}.get(array.dtype.name, array.dtype.name)


# ---- elementwise losses -------------------------------------------------------------------------------
class ElementwiseLoss(Function):
    """A loss computed elementwise by `pointwise`, then reduced.

    pointwise(xp, input, target, need_input, need_target) returns (loss, d loss/d input, d loss/d target);
    the derivatives are kept for the backward, so no graph is built for the elementwise expression.
    """

    @staticmethod
    def forward(ctx, input, target, pointwise, reduction):
        xp = get_array_module(input)
        need_input, need_target = ctx.needs_input_grad[:2]
        with np.errstate(divide="ignore", invalid="ignore"):
            loss, d_input, d_target = pointwise(xp, input, target, need_input, need_target)
        loss = loss.astype(input.dtype, copy=False)
        ctx.save_for_backward(d_input, d_target)
        ctx.meta = (input.shape, getattr(target, "shape", ()), reduction, _divisor(loss, reduction))
        if reduction == "none":
            return loss
        total = loss.sum()
        if reduction != "sum":
            total = total / ctx.meta[3]
        return _scalar(xp, total, input.dtype)

    @staticmethod
    def backward(ctx, grad):
        d_input, d_target = ctx.saved_tensors
        input_shape, target_shape, reduction, divisor = ctx.meta
        if reduction in ("mean", "batchmean"):
            grad = grad / divisor
        grad_input = sum_to((d_input * grad).astype(grad.dtype, copy=False), input_shape) \
            if d_input is not None else None
        grad_target = sum_to((d_target * grad).astype(grad.dtype, copy=False), target_shape) \
            if d_target is not None else None
        return grad_input, grad_target, None, None


def _divisor(loss, reduction):
    if reduction == "batchmean":
        return loss.shape[0] if loss.ndim else 1
    return loss.size


def _difference_loss(name, input, target, pointwise, reduction):
    if target.shape != input.shape:
        warnings.warn(f"Using a target size ({target.shape}) that is different to the input size ({input.shape}). "
                      "This will likely lead to incorrect results due to broadcasting. Please ensure they have the "
                      "same size.", stacklevel=3)
    if target._data.dtype != input._data.dtype:
        target = target.to(input.dtype)
    return ElementwiseLoss.apply(input, target, pointwise, reduction)


def _on_difference(local_fn):
    """Lift f(xp, diff) -> (loss, d loss/d diff) to the pointwise signature (target enters with sign -1)."""
    def pointwise(xp, input, target, need_input, need_target):
        loss, slope = local_fn(xp, input - target)
        return loss, (slope if need_input else None), (-slope if need_target else None)
    return pointwise


def _squared(xp, diff):
    return diff * diff, 2 * diff


def _absolute(xp, diff):
    return xp.abs(diff), xp.sign(diff)


def _smooth_l1(xp, diff, beta):
    size = xp.abs(diff)
    quadratic = size < beta
    loss = xp.where(quadratic, 0.5 * diff * diff / beta, size - 0.5 * beta)
    slope = xp.where(quadratic, diff / beta, xp.sign(diff))
    return loss, slope


def _huber(xp, diff, delta):
    size = xp.abs(diff)
    quadratic = size < delta
    loss = xp.where(quadratic, 0.5 * diff * diff, delta * (size - 0.5 * delta))
    slope = xp.clip(diff, -delta, delta)
    return loss, slope


_MSE = _on_difference(_squared)
_L1 = _on_difference(_absolute)


@full_precision
def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    reduction = _resolve_reduction(reduction, size_average, reduce)
    return _difference_loss("mse_loss", input, target, _MSE, reduction)


@full_precision
def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    reduction = _resolve_reduction(reduction, size_average, reduce)
    return _difference_loss("l1_loss", input, target, _L1, reduction)


@full_precision
def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    reduction = _resolve_reduction(reduction, size_average, reduce)
    if beta < 0:
        raise RuntimeError(f"smooth_l1_loss does not support negative values for beta, got {beta}")
    pointwise = _L1 if beta == 0 else _on_difference(functools.partial(_smooth_l1, beta=beta))
    return _difference_loss("smooth_l1_loss", input, target, pointwise, reduction)


@full_precision
def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    reduction = _resolve_reduction(reduction)
    if delta <= 0:
        raise RuntimeError(f"huber_loss does not support non-positive values for delta, got {delta}")
    return _difference_loss("huber_loss", input, target, _on_difference(functools.partial(_huber, delta=delta)),
                            reduction)


def _check_same_size(input, target):
    if target.shape != input.shape:
        raise ValueError(f"Using a target size ({target.shape}) that is different to the input size "
                         f"({input.shape}) is deprecated. Please ensure they have the same size.")


def _bce_pointwise(xp, x, t, need_input, need_target, weight):
    if ((x < 0) | (x > 1)).any():
        raise RuntimeError("all elements of input should be between 0 and 1; apply sigmoid first, or use "
                           "binary_cross_entropy_with_logits on raw scores")
    # Like PyTorch, log terms are clamped at -100 so that a confident wrong prediction stays finite.
    log_x = xp.maximum(xp.log(x), -100.0)
    log_rest = xp.maximum(xp.log1p(-x), -100.0)
    loss = -(t * log_x + (1 - t) * log_rest)
    scale = 1.0 if weight is None else weight
    d_input = scale * (x - t) / xp.maximum((1 - x) * x, 1e-12) if need_input else None
    d_target = scale * (log_rest - log_x) if need_target else None
    return loss * scale, d_input, d_target


@full_precision
def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    reduction = _resolve_reduction(reduction, size_average, reduce)
    _check_same_size(input, target)
    if target._data.dtype != input._data.dtype:
        target = target.to(input.dtype)
    weight_array = None if weight is None else weight._data
    pointwise = functools.partial(_bce_pointwise, weight=weight_array)
    return ElementwiseLoss.apply(input, target, pointwise, reduction)


def _bce_logits_pointwise(xp, x, t, need_input, need_target, weight, pos_weight):
    softplus_neg = xp.maximum(-x, 0) + xp.log1p(xp.exp(-xp.abs(x)))  # log(1 + exp(-x)), overflow-free
    sig = 0.5 * (xp.tanh(0.5 * x) + 1)
    if pos_weight is None:
        loss = (1 - t) * x + softplus_neg
        d_input = sig - t if need_input else None
        d_target = -x if need_target else None
    else:
        log_weight = 1 + (pos_weight - 1) * t
        loss = (1 - t) * x + log_weight * softplus_neg
        d_input = (1 - t) + log_weight * (sig - 1) if need_input else None
        d_target = -x + (pos_weight - 1) * softplus_neg if need_target else None
    if weight is not None:
        loss = loss * weight
        d_input = None if d_input is None else d_input * weight
        d_target = None if d_target is None else d_target * weight
    return loss, d_input, d_target


@full_precision
def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
                                     pos_weight=None):
    reduction = _resolve_reduction(reduction, size_average, reduce)
    if target.shape != input.shape:
        raise ValueError(f"Target size ({target.shape}) must be the same as input size ({input.shape})")
    if target._data.dtype != input._data.dtype:
        target = target.to(input.dtype)
    pointwise = functools.partial(_bce_logits_pointwise, weight=None if weight is None else weight._data,
                                  pos_weight=None if pos_weight is None else pos_weight._data)
    return ElementwiseLoss.apply(input, target, pointwise, reduction)


def _kl_pointwise(xp, x, t, need_input, need_target, log_target):
    if log_target:
        prob = xp.exp(t)
        loss = prob * (t - x)
        return loss, (-prob if need_input else None), (prob * (t - x + 1) if need_target else None)
    # t*log(t) is taken as 0 at t == 0 (and NaN for t < 0), like torch.xlogy.
    zero = t == 0
    log_t = xp.log(xp.where(zero, 1, t))
    loss = xp.where(zero, 0, t * log_t) - t * x
    d_target = log_t + 1 - x if need_target else None
    return loss, (-t if need_input else None), d_target


@full_precision
def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    reduction = _resolve_reduction(reduction, size_average, reduce, allowed=_REDUCTIONS + ("batchmean",))
    if reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      stacklevel=2)
    if target._data.dtype != input._data.dtype:
        target = target.to(input.dtype)
    pointwise = functools.partial(_kl_pointwise, log_target=log_target)
    return ElementwiseLoss.apply(input, target, pointwise, reduction)


def _soft_margin_pointwise(xp, x, t, need_input, need_target):
    z = -t * x
    loss = xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))
    sig = 0.5 * (xp.tanh(0.5 * z) + 1)
    return loss, (-t * sig if need_input else None), (-x * sig if need_target else None)


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    reduction = _resolve_reduction(reduction, size_average, reduce)
    _check_same_size(input, target)
    return ElementwiseLoss.apply(input, target.to(input.dtype), _soft_margin_pointwise, reduction)


def _poisson_pointwise(xp, x, t, need_input, need_target, log_input, full, eps):
    if log_input:
        rate = xp.exp(x)
        loss = rate - t * x
        d_input = rate - t if need_input else None
        d_target = -x if need_target else None
    else:
        loss = x - t * xp.log(x + eps)
        d_input = 1 - t / (x + eps) if need_input else None
        d_target = -xp.log(x + eps) if need_target else None
    if full:
        # Stirling's term t*log(t) - t + 0.5*log(2*pi*t), only where t > 1.
        safe = xp.where(t > 1, t, 1)
        loss = loss + xp.where(t > 1, safe * xp.log(safe) - safe + 0.5 * xp.log(2 * np.pi * safe), 0)
    return loss, d_input, d_target


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-08, reduce=None,
                     reduction="mean"):
    reduction = _resolve_reduction(reduction, size_average, reduce)
    if full and target.requires_grad:
        raise NotImplementedError("poisson_nll_loss with full=True does not differentiate the target; detach it")
    pointwise = functools.partial(_poisson_pointwise, log_input=log_input, full=full, eps=eps)
    return ElementwiseLoss.apply(input, target.to(input.dtype), pointwise, reduction)


# ---- losses composed from core ops (their nodes carry the backward) ---------------------------------------
def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def margin_ranking_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"):
    reduction = _resolve_reduction(reduction, size_average, reduce)
    if not input1.dim() == input2.dim() == target.dim():
        raise RuntimeError(f"margin_ranking_loss : All input tensors should have same dimension but got sizes: "
                           f"input1: {input1.shape}, input2: {input2.shape}, target: {target.shape} ")
    return _reduce(ew.clamp(-target * (input1 - input2) + margin, min=0.0), reduction)


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None, reduction="mean"):
    reduction = _resolve_reduction(reduction, size_average, reduce)
    margin_part = ew.where(target != 1, ew.clamp(margin - input, min=0.0), 0.0)
    self_part = ew.where(target != -1, input, 0.0)
    return _reduce(margin_part + self_part, reduction)


def cosine_embedding_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"):
    reduction = _resolve_reduction(reduction, size_average, reduce)
    eps = 1e-12
    dim = input1.dim() - 1
    dot = (input1 * input2).sum(dim)
    cos = dot / ew.sqrt(((input1 * input1).sum(dim) + eps) * ((input2 * input2).sum(dim) + eps))
    loss = ew.where(target == 1, 1 - cos, 0.0) + ew.where(target == -1, ew.clamp(cos - margin, min=0.0), 0.0)
    return _reduce(loss, reduction)


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2.0, eps=1e-06, swap=False, size_average=None,
                        reduce=None, reduction="mean"):
    reduction = _resolve_reduction(reduction, size_average, reduce)
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = ew.minimum(d_neg, pairwise_distance(positive, negative, p, eps))
    return _reduce(ew.clamp(margin + d_pos - d_neg, min=0.0), reduction)


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    reduction = _resolve_reduction(reduction, size_average, reduce)
    target = target.to(input.dtype)
    loss = -(target * logsigmoid(input) + (1 - target) * logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss.sum(input.dim() - 1) / input.shape[-1], reduction)


def gaussian_nll_loss(input, target, var, full=False, eps=1e-06, reduction="mean"):
    reduction = _resolve_reduction(reduction)
    if isinstance(var, (int, float)):
        var = input.new_full(tuple(input.shape), float(var))
    if var.shape != input.shape:
        if tuple(var.shape) == tuple(input.shape[:-1]):
            var = var.unsqueeze(-1)
        elif not (tuple(var.shape[:-1]) == tuple(input.shape[:-1]) and var.shape[-1] == 1):
            raise ValueError(f"var is of incorrect size: {list(var.shape)} for an input of size "
                             f"{list(input.shape)}; use the input's shape, or it with the last dim 1 or dropped")
    if bool((var < 0).any()):
        raise ValueError("var has negative entry/entries")
    # The clamp keeps the loss finite without changing the gradient, as in PyTorch.
    var = var + (ew.clamp(var.detach(), min=eps) - var.detach())
    loss = 0.5 * (ew.log(var) + (input - target) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


# ---- class-index losses: cross-entropy and NLL ----------------------------------------------------------
def _as_rows(x):
    """(C,) / (N, C) / (N, C, d1, ...) -> an (M, C) array with classes last."""
    if x.ndim == 1:
        return x.reshape(1, -1)
    if x.ndim == 2:
        return x
    xp = get_array_module(x)
    return xp.ascontiguousarray(xp.moveaxis(x, 1, -1)).reshape(-1, x.shape[1])


def _from_rows(rows, like_shape):
    if len(like_shape) <= 2:
        return rows.reshape(like_shape)
    xp = get_array_module(rows)
    moved = rows.reshape((like_shape[0],) + tuple(like_shape[2:]) + (like_shape[1],))
    return xp.moveaxis(moved, -1, 1)


def _target_weights(xp, target, weight, ignore_index, num_classes, dtype):
    """Per-row class index (ignored rows point at class 0) and per-row weight (0 where ignored)."""
    flat = target.reshape(-1)
    valid = flat != ignore_index
    safe = xp.where(valid, flat, 0)
    if safe.size and (int(safe.min()) < 0 or int(safe.max()) >= num_classes):
        bad = safe[(safe < 0) | (safe >= num_classes)][0]
        raise IndexError(f"Target {int(bad)} is out of bounds.")
    row_weight = weight[safe] * valid if weight is not None else valid.astype(dtype)
    return safe, row_weight.astype(dtype, copy=False)


def _reduce_rows(xp, losses, reduction, denominator, out_shape, dtype):
    if reduction == "none":
        return losses.reshape(out_shape).astype(dtype, copy=False)
    total = losses.sum()
    if reduction == "mean":
        with np.errstate(divide="ignore", invalid="ignore"):
            total = total / denominator
    return _scalar(xp, total, dtype)


class CrossEntropy(Function):
    """log_softmax + NLL (with optional label smoothing) in one node; backward is softmax - target."""

    @staticmethod
    def forward(ctx, logits, target, weight, ignore_index, smoothing, reduction):
        xp = get_array_module(logits)
        rows = _as_rows(logits)
        num_rows, num_classes = rows.shape
        shifted = rows - max_keepdims(rows, 1)
        probs = xp.exp(shifted)
        sum_exp = probs.sum(axis=1)
        lse = xp.log(sum_exp)
        probs /= sum_exp[:, None]
        index, row_weight = _target_weights(xp, target, weight, ignore_index, num_classes, rows.dtype)
        # loss_i = a_i * (-log p[i, t_i]) + b_i * (-sum_c w_c log p[i, c]); the second term is label smoothing.
        nll_coef = row_weight * (1.0 - smoothing)
        arange = xp.arange(num_rows)
        losses = nll_coef * (lse - shifted[arange, index])
        smooth_coef = None
        class_weight_total = num_classes if weight is None else weight.sum()
        if smoothing > 0:
            valid = (target.reshape(-1) != ignore_index).astype(rows.dtype)
            smooth_coef = valid * (smoothing / num_classes)
            weighted_shift = shifted.sum(axis=1) if weight is None else shifted @ weight
            losses += smooth_coef * (class_weight_total * lse - weighted_shift)
        denominator = row_weight.sum()
        if reduction == "mean":
            with np.errstate(divide="ignore", invalid="ignore"):
                nll_coef = nll_coef / denominator
                smooth_coef = None if smooth_coef is None else smooth_coef / denominator
        ctx.save_for_backward(probs)
        ctx.state = (index, nll_coef, smooth_coef, weight, class_weight_total, logits.shape, reduction)
        return _reduce_rows(xp, losses, reduction, denominator, target.shape, logits.dtype)

    @staticmethod
    def backward(ctx, grad):
        (probs,) = ctx.saved_tensors
        index, nll_coef, smooth_coef, weight, class_weight_total, logits_shape, reduction = ctx.state
        xp = get_array_module(probs)
        row_grad = grad.reshape(-1) if reduction == "none" else grad
        a = nll_coef * row_grad
        scale = a if smooth_coef is None else a + smooth_coef * row_grad * class_weight_total
        out = probs * scale[:, None]
        out[xp.arange(out.shape[0]), index] -= a
        if smooth_coef is not None:
            class_weights = 1.0 if weight is None else weight[None, :]
            out -= (smooth_coef * row_grad)[:, None] * class_weights
        return _from_rows(out.astype(probs.dtype, copy=False), logits_shape), None, None, None, None, None


class SoftTargetCrossEntropy(Function):
    """Cross-entropy against class probabilities: loss_i = -sum_c w_c q_ic log p_ic."""

    @staticmethod
    def forward(ctx, logits, target, weight, smoothing, reduction):
        xp = get_array_module(logits)
        rows = _as_rows(logits)
        num_rows, num_classes = rows.shape
        q = _as_rows(target)
        if smoothing > 0:
            q = q * (1.0 - smoothing) + smoothing / num_classes
        weighted_q = q if weight is None else q * weight
        shifted = rows - max_keepdims(rows, 1)
        probs = xp.exp(shifted)
        sum_exp = probs.sum(axis=1)
        lse = xp.log(sum_exp)
        probs /= sum_exp[:, None]
        mass = weighted_q.sum(axis=1)
        losses = mass * lse - (weighted_q * shifted).sum(axis=1)
        ctx.save_for_backward(probs, weighted_q, mass, shifted - lse[:, None])
        ctx.state = (weight, smoothing, logits.shape, reduction, num_rows)
        out_shape = (logits.shape[0],) + tuple(logits.shape[2:]) if logits.ndim > 1 else ()
        return _reduce_rows(xp, losses, reduction, num_rows, out_shape, logits.dtype)

    @staticmethod
    def backward(ctx, grad):
        probs, weighted_q, mass, log_probs = ctx.saved_tensors
        weight, smoothing, logits_shape, reduction, num_rows = ctx.state
        need_logits, need_target = ctx.needs_input_grad[:2]
        row_grad = grad.reshape(-1, 1) if reduction == "none" else grad
        if reduction == "mean":
            row_grad = row_grad / num_rows
        grad_logits = grad_target = None
        if need_logits:
            grad_logits = _from_rows((probs * mass[:, None] - weighted_q) * row_grad, logits_shape)
        if need_target:
            class_weights = 1.0 if weight is None else weight
            grad_target = _from_rows(-(1.0 - smoothing) * class_weights * log_probs * row_grad, logits_shape)
        return grad_logits, grad_target, None, None, None


class NLL(Function):
    """Negative log-likelihood of log-probabilities at the target classes."""

    @staticmethod
    def forward(ctx, log_probs, target, weight, ignore_index, reduction):
        xp = get_array_module(log_probs)
        rows = _as_rows(log_probs)
        index, row_weight = _target_weights(xp, target, weight, ignore_index, rows.shape[1], rows.dtype)
        losses = -row_weight * rows[xp.arange(rows.shape[0]), index]
        denominator = row_weight.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            coef = row_weight / denominator if reduction == "mean" else row_weight
        ctx.state = (index, coef, rows.shape, log_probs.shape, reduction)
        return _reduce_rows(xp, losses, reduction, denominator, target.shape, log_probs.dtype)

    @staticmethod
    def backward(ctx, grad):
        index, coef, rows_shape, input_shape, reduction = ctx.state
        xp = get_array_module(grad)
        row_grad = grad.reshape(-1) if reduction == "none" else grad
        out = xp.zeros(rows_shape, dtype=grad.dtype)
        out[xp.arange(rows_shape[0]), index] = -(coef * row_grad)
        return _from_rows(out, input_shape), None, None, None, None


def _check_class_target(input, target):
    if input.dim() == 0:
        raise ValueError("Expected input to have at least 1 dimension (C) or (N, C, ...), got a 0-D tensor")
    if target._data.dtype.kind not in "iu":
        raise RuntimeError(f"expected scalar type Long but found {_dtype_name(target._data)}: class-index targets "
                           "must be integer (use target.long()); class-probability targets must have the input's "
                           f"shape {list(input.shape)}")
    if input.dim() == 1:
        if target.dim() != 0:
            raise RuntimeError(f"For an unbatched 1-D input of shape {list(input.shape)} the target must be 0-D, "
                               f"got shape {list(target.shape)}")
        return
    if target.dim() == 0 or target.shape[0] != input.shape[0]:
        target_batch = target.shape[0] if target.dim() else 1
        raise ValueError(f"Expected input batch_size ({input.shape[0]}) to match target batch_size "
                         f"({target_batch}).")
    expected = (input.shape[0],) + tuple(input.shape[2:])
    if tuple(target.shape) != expected:
        raise RuntimeError(f"size mismatch (got input: {list(input.shape)}, target: {list(target.shape)}); the "
                           f"target must have shape {list(expected)}")


def _weight_array(weight, input):
    if weight is None:
        return None
    num_classes = input.shape[1] if input.dim() > 1 else input.shape[0]
    if weight.numel() != num_classes:
        raise RuntimeError(f"weight tensor should be defined either for all {num_classes} classes or no classes but "
                           f"got weight tensor of shape: {list(weight.shape)}")
    return weight._data.astype(input._data.dtype, copy=False)


@full_precision
def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                  label_smoothing=0.0):
    reduction = _resolve_reduction(reduction, size_average, reduce)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    if input._data.dtype.kind != "f":
        raise RuntimeError(f"cross_entropy expects floating-point scores, got {input.dtype}; call input.float()")
    weight_array = _weight_array(weight, input)
    if target._data.dtype.kind == "f" and target.shape == input.shape:
        if target._data.dtype != input._data.dtype:
            target = target.to(input.dtype)
        return SoftTargetCrossEntropy.apply(input, target, weight_array, label_smoothing, reduction)
    _check_class_target(input, target)
    return CrossEntropy.apply(input, target._data, weight_array, ignore_index, label_smoothing, reduction)


@full_precision
def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    reduction = _resolve_reduction(reduction, size_average, reduce)
    _check_class_target(input, target)
    return NLL.apply(input, target._data, _weight_array(weight, input), ignore_index, reduction)
