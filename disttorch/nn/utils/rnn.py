"""torch.nn.utils.rnn: padding variable-length sequences into one batch tensor, and packing them
(PackedSequence) for the recurrent layers."""
import collections

import numpy as np

from ...core import creation
from ...core.ops.shape import cat, stack
from ...core.tensor import Tensor


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack tensors of shape (L_i, *) into (max L, B, *) or (B, max L, *), padding with padding_value.

    Built from cat, so gradients reach every sequence's elements.
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"Expected padding_side to be one of left or right, but got {padding_side}.")
    sequences = list(sequences)
    longest = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        missing = longest - s.shape[0]
        if missing:
            fill = creation.full((missing,) + tuple(s.shape[1:]), padding_value, dtype=s.dtype, device=s.device)
            s = cat([s, fill] if padding_side == "right" else [fill, s], 0)
        padded.append(s)
    return stack(padded, 0 if batch_first else 1)



class PackedSequence(collections.namedtuple("PackedSequence_", ["data", "batch_sizes", "sorted_indices",
                                                                 "unsorted_indices"])):
    """Sequences of different lengths laid out time step by time step, longest first, as torch's.

    data holds, for each time step t, the rows of the batch_sizes[t] sequences still running (in sorted
    order); sorted_indices[i] is the batch index of the i-th longest sequence (None: already sorted), and
    unsorted_indices is its inverse.
    """

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None and sorted_indices is not None:
            unsorted_indices = _invert_permutation(sorted_indices)
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs):
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        device = data.device
        indices = [None if i is None else i.to(device) for i in (self.sorted_indices, self.unsorted_indices)]
        return type(self)(data, self.batch_sizes, *indices)

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to("cuda" if device is None else device)

    @property
    def is_cuda(self):
        return self.data.is_cuda


def _invert_permutation(permutation):
    inverse = np.empty(len(permutation), dtype=np.int64)
    inverse[np.asarray(permutation.tolist(), dtype=np.int64)] = np.arange(len(permutation))
    return creation.tensor(inverse, device=permutation.device)


def _lengths_array(lengths):
    values = np.asarray(lengths.tolist() if isinstance(lengths, Tensor) else list(lengths), dtype=np.int64)
    if values.size and values.min() <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an element in 'lengths' "
                           "that is <= 0")
    return values


def _pack_time_major(padded, lengths, sorted_indices):
    """PackedSequence data and batch_sizes from a (T, B, *) tensor whose columns are in sorted order."""
    batch_sizes = np.array([(lengths > t).sum() for t in range(int(lengths[0]))], dtype=np.int64)
    data = cat([padded[t, :int(size)] for t, size in enumerate(batch_sizes)], 0)
    return PackedSequence(data, creation.tensor(batch_sizes), sorted_indices, None)


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    lengths = _lengths_array(lengths)
    if enforce_sorted:
        if np.any(np.diff(lengths) > 0):
            raise RuntimeError(
                "`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. You can pass "
                "`enforce_sorted=False` to pack_padded_sequence and/or pack_sequence to sidestep this requirement "
                "if you do not need ONNX exportability.")
        sorted_indices = None
    else:
        order = np.argsort(-lengths, kind="stable")
        lengths = lengths[order]
        sorted_indices = creation.tensor(order, device=input.device)
    if lengths.size and lengths[0] > input.shape[1 if batch_first else 0]:
        raise RuntimeError(f"pack_padded_sequence: a length of {lengths[0]} exceeds the input's "
                           f"{input.shape[1 if batch_first else 0]} time steps")
    time_major = input.transpose(0, 1) if batch_first else input
    if sorted_indices is not None:
        time_major = time_major.index_select(1, sorted_indices)
    return _pack_time_major(time_major, lengths, sorted_indices)


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    batch_sizes = np.asarray(sequence.batch_sizes.tolist(), dtype=np.int64)
    longest = len(batch_sizes)
    if total_length is not None:
        if total_length < longest:
            raise ValueError("Expected total_length to be at least the length of the longest sequence in input, but "
                             f"got total_length={total_length} and max sequence length being {longest}")
    else:
        total_length = longest
    # A sequence's length is the number of time steps whose batch still includes it.
    lengths = np.array([(batch_sizes > i).sum() for i in range(int(batch_sizes[0]))], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(batch_sizes)])
    columns = [sequence.data[offsets[:length] + i] for i, length in enumerate(lengths)]
    padded = pad_sequence(columns, padding_value=padding_value)
    if total_length > longest:
        fill = creation.full((total_length - longest,) + tuple(padded.shape[1:]), padding_value,
                             dtype=padded.dtype, device=padded.device)
        padded = cat([padded, fill], 0)
    if sequence.unsorted_indices is not None:
        padded = padded.index_select(1, sequence.unsorted_indices)
        lengths = lengths[np.asarray(sequence.unsorted_indices.tolist(), dtype=np.int64)]
    return (padded.transpose(0, 1) if batch_first else padded), creation.tensor(lengths)


def pack_sequence(sequences, enforce_sorted=True):
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences):
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return [padded[i, :int(length)] for i, length in enumerate(lengths.tolist())]
