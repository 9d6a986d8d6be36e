"""torch.nn.functional: the stateless counterparts of the layers in disttorch.nn."""
from ...core.ops.indexing import one_hot  # noqa: F401
from .activation import (  # noqa: F401
    celu, elu, erf, gelu, glu, hardshrink, hardsigmoid, hardswish, hardtanh, leaky_relu, log_softmax, logsigmoid, mish,
    prelu, relu, relu6, relu_, selu, sigmoid, silu, softmax, softmin, softplus, softshrink, softsign, tanh, tanhshrink,
    threshold,
)
from .attention import scaled_dot_product_attention  # noqa: F401
from .conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d  # noqa: F401
from .distance import cosine_similarity, pairwise_distance  # noqa: F401
from .dropout import dropout, dropout1d, dropout2d, dropout3d  # noqa: F401
from .embedding import embedding  # noqa: F401
from .linear import bilinear, linear  # noqa: F401
from .loss import (  # noqa: F401
    binary_cross_entropy, binary_cross_entropy_with_logits, cosine_embedding_loss, cross_entropy, gaussian_nll_loss,
    hinge_embedding_loss, huber_loss, kl_div, l1_loss, margin_ranking_loss, mse_loss, multilabel_soft_margin_loss,
    nll_loss, poisson_nll_loss, smooth_l1_loss, soft_margin_loss, triplet_margin_loss,
)
from .normalization import batch_norm, group_norm, instance_norm, layer_norm, normalize, rms_norm  # noqa: F401
from .pooling import (  # noqa: F401
    adaptive_avg_pool1d, adaptive_avg_pool2d, avg_pool1d, avg_pool2d, max_pool1d, max_pool2d,
)
from .resize import interpolate, pad, pixel_shuffle, pixel_unshuffle, upsample  # noqa: F401
