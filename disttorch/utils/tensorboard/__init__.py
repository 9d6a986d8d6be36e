"""torch.utils.tensorboard: SummaryWriter, writing TensorBoard event files through the `tensorboard` package
(an optional extra: pip install 'disttorch[tensorboard]')."""
try:
    import tensorboard  # noqa: F401
except ImportError:
    raise ImportError("torch.utils.tensorboard needs the tensorboard package to write event files: "
                      "pip install 'disttorch[tensorboard]' (or pip install tensorboard)") from None

from .writer import SummaryWriter  # noqa: E402

__all__ = ["SummaryWriter"]
