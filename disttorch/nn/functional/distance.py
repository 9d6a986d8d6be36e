"""cosine_similarity and pairwise_distance, composed from differentiable core ops."""
from ...core.ops import elementwise as ew
from ...core.ops import reduction as rd


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """x1.x2 / (max(|x1|, eps) * max(|x2|, eps)) along dim (inputs broadcast)."""
    norm1 = ew.clamp(rd.norm(x1, 2, dim, keepdim=True), min=eps)
    norm2 = ew.clamp(rd.norm(x2, 2, dim, keepdim=True), min=eps)
    return rd.sum((x1 / norm1) * (x2 / norm2), dim)


def pairwise_distance(x1, x2, p=2.0, eps=1e-06, keepdim=False):
    """|x1 - x2 + eps|_p along the last dim (eps keeps the gradient finite when x1 == x2)."""
    diff = x1 - x2 + eps
    if p == 2.0:
        return ew.sqrt(rd.sum(diff * diff, -1, keepdim=keepdim))
    return rd.sum(ew.abs(diff) ** p, -1, keepdim=keepdim) ** (1.0 / p)
