"""torch.nn: modules, parameters, functional ops, initialisers and utilities."""
from . import functional, init, utils  # noqa: F401
from .modules import *  # noqa: F403
from .parameter import Buffer, Parameter  # noqa: F401
from . import parallel  # noqa: F401
from .parallel import DataParallel, SyncBatchNorm  # noqa: F401
