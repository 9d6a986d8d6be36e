"""Exception types of the communication layer, shaped like torch.distributed's.

All of them subclass RuntimeError, so code written against PyTorch that catches
RuntimeError around collectives keeps working.
"""


class DistError(RuntimeError):
    """Base class for every error raised by the distributed layer."""


class DistBackendError(DistError):
    """A collective could not complete (peer failure, mismatch, abort)."""


class DistStoreError(DistError):
    """The rendezvous store timed out or refused a request."""


class DistNetworkError(DistError):
    """A socket could not be bound or connected."""


class RankFailure(DistBackendError):
    """A peer process died or left while this rank still needed it.

    ``rank`` is the global rank of the peer that failed.
    """

    def __init__(self, message, rank):
        super().__init__(message)
        self.rank = rank


class CollectiveTimeout(DistBackendError):
    """A collective did not finish within the process group's timeout.

    ``missing_ranks`` lists the global ranks that had not reached it, when known.
    """

    def __init__(self, message, missing_ranks=()):
        super().__init__(message)
        self.missing_ranks = list(missing_ranks)


class CollectiveMismatch(DistBackendError):
    """Ranks called different collectives (op, dtype, shape, reduce op or order)."""
