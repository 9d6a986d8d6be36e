"""PowerSGD gradient compression (Vogels et al., 2019) as a DDP communication hook, with torch's names.

Each gradient matrix M (a parameter's gradient viewed as rows x rest) of a bucket travels as two thin
factors: P = M Q is all-reduced and orthogonalized, then Q = M^T P is all-reduced, and every rank
rebuilds M ~ P Q^T / world_size. Vectors and matrices too small to gain at least
`min_compression_rate` are all-reduced as they are. With error feedback, what compression lost in a
step is added to the next step's gradient; with warm start, Q starts from the previous step's value.

Before `start_powerSGD_iter` steps the hook all-reduces plainly (the buckets are still being
rebuilt, and early gradients are the least compressible).
"""
import numpy as np

from disttorch import distributed as dist
from disttorch.core.tensor import Tensor
from disttorch.futures import Future
from disttorch.nn.parallel.comm_hooks import allreduce_hook


class PowerSGDState:
    """What PowerSGD keeps between steps: per-bucket error residuals and P/Q factors, the step count."""

    __slots__ = ["process_group", "matrix_approximation_rank", "start_powerSGD_iter", "min_compression_rate",
                 "orthogonalization_epsilon", "use_error_feedback", "warm_start", "batch_tensors_with_same_shape",
                 "rng", "error_dict", "p_memory_dict", "q_memory_dict", "iter", "total_numel_before_compression",
                 "total_numel_after_compression", "compression_stats_logging_frequency", "next_stats_report"]

    def __init__(self, process_group, matrix_approximation_rank=1, start_powerSGD_iter=1_000,
                 min_compression_rate=2, use_error_feedback=True, warm_start=True, orthogonalization_epsilon=0,
                 random_seed=0, compression_stats_logging_frequency=10_000, batch_tensors_with_same_shape=False):
        if (use_error_feedback or warm_start) and start_powerSGD_iter <= 1:
            raise ValueError(
                "Expect `start_powerSGD_iter` > 1 if `use_error_feedback` or `warm_start` is enabled, because "
                "PowerSGD can only be applied after the first two iterations in DDP.")
        self.process_group = process_group
        self.matrix_approximation_rank = matrix_approximation_rank
        self.start_powerSGD_iter = start_powerSGD_iter
        self.min_compression_rate = min_compression_rate
        self.use_error_feedback = use_error_feedback
        self.warm_start = warm_start
        self.orthogonalization_epsilon = orthogonalization_epsilon
        self.batch_tensors_with_same_shape = batch_tensors_with_same_shape
        # One stream shared by all ranks: the same seed gives every rank the same random Q.
        self.rng = np.random.RandomState(random_seed)
        self.error_dict = {}
        self.p_memory_dict = {}
        self.q_memory_dict = {}
        self.iter = 0
        self.total_numel_before_compression = 0
        self.total_numel_after_compression = 0
        self.compression_stats_logging_frequency = max(1, compression_stats_logging_frequency)
        self.next_stats_report = 0

    def __getstate__(self):
        """Everything but the process group (as torch's state, so a checkpoint can hold it)."""
        return {slot: getattr(self, slot) for slot in self.__slots__ if slot != "process_group"}

    def __setstate__(self, state):
        self.process_group = None
        for slot, value in state.items():
            setattr(self, slot, value)

    def maybe_increase_iter(self, bucket):
        # The last bucket of a step is the one to count it by.
        if bucket.is_last():
            self.iter += 1

    def compression_stats(self):
        """(compress_rate, numel_before_compression, numel_after_compression) so far."""
        after = self.total_numel_after_compression
        rate = self.total_numel_before_compression / after if after > 0 else 0
        return rate, self.total_numel_before_compression, after


def _should_compress(num_rows, num_cols, matrix_approximation_rank, min_compression_rate):
    uncompressed = num_rows * num_cols
    compressed = (num_rows + num_cols) * matrix_approximation_rank
    return compressed * min_compression_rate < uncompressed, uncompressed, compressed


def _orthogonalize(matrix, epsilon=0):
    """Orthonormal columns in place: Gram-Schmidt for rank <= 2 (as torch), Householder QR above."""
    rank = matrix.shape[1]
    if rank > 2 and epsilon == 0:
        matrix[...] = np.linalg.qr(matrix)[0]
        return
    for i in range(rank):
        column = matrix[:, i:i + 1]
        norm = np.linalg.norm(column)
        if norm + epsilon == 0:
            # A vanishing gradient: no direction to keep (torch turns the NaNs into zeros the same way).
            column[...] = 0
        else:
            column /= norm + epsilon
        if i + 1 < rank:
            rest = matrix[:, i + 1:]
            rest -= (column * rest).sum(axis=0, keepdims=True) * column


def _gradient_views(bucket):
    """Each parameter's slice of the bucket's flat buffer, shaped like the parameter."""
    flat = bucket.buffer()._data
    views, offset = [], 0
    for p in bucket.parameters():
        size = p._data.size
        views.append(flat[offset:offset + size].reshape(p._data.shape))
        offset += size
    return views


def powerSGD_hook(state, bucket):
    """torch.distributed.algorithms.ddp_comm_hooks.powerSGD_hook.powerSGD_hook: returns a Future of the
    bucket's averaged (compressed, then rebuilt) flat gradient."""
    group = state.process_group
    world_size = dist.get_world_size(group)
    if state.iter < state.start_powerSGD_iter:
        state.maybe_increase_iter(bucket)
        return allreduce_hook(group, bucket)

    buffer = bucket.buffer()
    flat = buffer._data
    index = bucket.index()
    local_copy = None
    if state.use_error_feedback:
        residual = state.error_dict.get(index)
        if residual is not None and residual.shape == flat.shape:
            flat += residual
        local_copy = flat.copy()

    compressed, uncompressed = [], []
    for view in _gradient_views(bucket):
        matrix = view.reshape(view.shape[0], -1) if view.ndim > 0 else view.reshape(1, 1)
        rows, cols = matrix.shape
        rank = min(rows, cols, state.matrix_approximation_rank)
        worth, before, after = _should_compress(rows, cols, rank, state.min_compression_rate)
        state.total_numel_before_compression += before
        if worth and view.ndim > 1:
            compressed.append((matrix, rank))
            state.total_numel_after_compression += after
        else:
            uncompressed.append(view)
            state.total_numel_after_compression += before

    p_size = sum(matrix.shape[0] * rank for matrix, rank in compressed)
    q_size = sum(matrix.shape[1] * rank for matrix, rank in compressed)
    fresh = not state.warm_start or index not in state.p_memory_dict or state.q_memory_dict[index].size != q_size
    if fresh:
        state.p_memory_dict[index] = np.empty(p_size, flat.dtype)
        state.q_memory_dict[index] = np.empty(q_size, flat.dtype)
    ps, qs = _factor_views(compressed, state.p_memory_dict[index], state.q_memory_dict[index])
    if fresh:
        random = np.random.default_rng(state.rng.randint(1_000_000_000))
        for q in qs:
            q[...] = random.standard_normal(q.shape)
    for (matrix, _), p, q in zip(compressed, ps, qs):
        _orthogonalize(q, state.orthogonalization_epsilon)
        np.matmul(matrix, q, out=p)

    # The plain part and the P factors leave now, while backward goes on; Q needs the summed P.
    plain = Tensor._wrap(np.concatenate([view.reshape(-1) for view in uncompressed]) if uncompressed
                         else np.empty(0, flat.dtype))
    plain_work = dist.all_reduce(plain, group=group, async_op=True)
    p_tensor = Tensor._wrap(state.p_memory_dict[index])
    p_work = dist.all_reduce(p_tensor, group=group, async_op=True)

    def decompress():
        plain_work.wait()
        offset = 0
        for view in uncompressed:
            view[...] = plain._data[offset:offset + view.size].reshape(view.shape) / world_size
            offset += view.size
        p_work.wait()
        for (matrix, _), p, q in zip(compressed, ps, qs):
            _orthogonalize(p, state.orthogonalization_epsilon)
            np.matmul(matrix.T, p, out=q)
        dist.all_reduce(Tensor._wrap(state.q_memory_dict[index]), group=group)
        state.q_memory_dict[index] /= world_size
        for (matrix, _), p, q in zip(compressed, ps, qs):
            np.matmul(p, q.T, out=matrix)
        if state.use_error_feedback:
            state.error_dict[index] = local_copy - flat
        if not state.warm_start:
            state.p_memory_dict.clear()
            state.q_memory_dict.clear()
        state.maybe_increase_iter(bucket)
        return buffer

    future = Future()
    future._wait_fn = lambda: future.set_result(decompress())
    return future


def _factor_views(compressed, p_memory, q_memory):
    ps, qs, p_offset, q_offset = [], [], 0, 0
    for matrix, rank in compressed:
        rows, cols = matrix.shape
        ps.append(p_memory[p_offset:p_offset + rows * rank].reshape(rows, rank))
        qs.append(q_memory[q_offset:q_offset + cols * rank].reshape(cols, rank))
        p_offset += rows * rank
        q_offset += cols * rank
    return ps, qs
