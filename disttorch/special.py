"""torch.special: the special functions disttorch has, under torch.special's names."""
from .core.ops.elementwise import expm1, log1p, sigmoid as expit  # noqa: F401
from .core.ops.reduction import log_softmax, logsumexp, softmax  # noqa: F401
from .nn.functional.activation import erf, erfinv  # noqa: F401


def logit(input, eps=None):
    return input.logit(eps)
