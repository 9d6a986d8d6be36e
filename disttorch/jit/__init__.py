"""disttorch.jit: trace a forward pass into a static program that runs without the model's Python class.

    traced = torch.jit.trace(model.eval(), example_input)
    traced.save("model.pt")                      # JSON program + raw arrays (npz); no pickle
    loaded = torch.jit.load("model.pt")
    loaded(new_input)                            # same ops, any batch size

Ops are named by their registry name (module + class of the op Function) and resolved on load only
from disttorch's op modules. Branching on tensor values, unrecorded in-place writes and tensors
created from input shapes inside forward are reported with TracerWarning.
"""
import json
import warnings

import numpy as np

from ..core import random as _random
from ..core.backend import is_cuda_array
from ..core.ops.elementwise import Cast
from ..core.tensor import Tensor
from ._graph import Node, Program
from ._tracer import Recorder, TracerWarning, recording

__all__ = ["trace", "load", "save", "TracedModule", "TracerWarning", "ScriptModule"]

_FORMAT = "disttorch.jit.program"
_VERSION = 1
_PROGRAM_KEY = "__program__"


class TracedModule:
    """A recorded program plus its constants; callable like the module it was traced from."""

    def __init__(self, program, trainable=(), name="TracedModule"):
        self._program = program
        self._name = name
        self._constants = {}
        for vid, (const_name, array) in program.constants.items():
            tensor = Tensor._wrap(array)
            if vid in trainable:
                tensor.requires_grad = True
            self._constants[vid] = tensor
        self.training = False

    def __call__(self, *inputs):
        return self.forward(*inputs)

    def forward(self, *inputs):
        meta = self._program.input_meta
        if len(inputs) != len(meta):
            raise TypeError(f"{self._name} was traced with {len(meta)} input(s) but got {len(inputs)}")
        for i, (x, (ndim, _)) in enumerate(zip(inputs, meta)):
            if not isinstance(x, Tensor):
                raise TypeError(f"{self._name} input {i} must be a Tensor, got {type(x).__name__}")
            if x.dim() != ndim:
                raise RuntimeError(
                    f"{self._name} input {i} was traced with rank {ndim} but got shape {list(x.shape)}; "
                    "a traced program accepts new sizes but not a different number of dimensions")
        return self._program.run(inputs, self._constants)

    @property
    def graph(self):
        return self._program.describe()

    code = graph

    def named_parameters(self):
        for vid, tensor in self._constants.items():
            if tensor.requires_grad:
                yield self._program.constants[vid][0], tensor

    def parameters(self):
        for _, tensor in self.named_parameters():
            yield tensor

    def state_dict(self):
        return {self._program.constants[vid][0]: t for vid, t in self._constants.items()
                if not self._program.constants[vid][0].startswith("_constant")}

    def eval(self):
        """The trace froze the mode it was recorded in (e.g. BatchNorm statistics); kept for API parity."""
        return self

    def train(self, mode=True):
        return self

    def save(self, f):
        save(self, f)

    def __repr__(self):
        return f"{self._name}(traced, {len(self._program.nodes)} ops)"


ScriptModule = TracedModule


def _as_input_tuple(example_inputs):
    inputs = (example_inputs,) if isinstance(example_inputs, Tensor) else tuple(example_inputs)
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            raise TypeError(f"jit.trace example_inputs must be Tensors; input {i} is {type(x).__name__}")
    return inputs


def _placeholder(x):
    # Floating inputs enter as non-leaf tensors that require grad, so in-place ops inside forward go
    # through the recorded (out-of-place + write-back) path instead of writing raw memory.
    if x._data.dtype.kind == "f":
        leaf = Tensor._wrap(x._data, requires_grad=True)
        return Cast.apply(leaf, x._data.dtype)
    return Tensor._wrap(x._data)


def trace(func, example_inputs, check_trace=True, check_inputs=None, check_tolerance=1e-5):
    """Run `func` once on `example_inputs` and return a TracedModule replaying the recorded ops."""
    inputs = _as_input_tuple(example_inputs)
    named = []
    if hasattr(func, "named_parameters"):
        named = list(func.named_parameters()) + list(func.named_buffers())
    recorder = Recorder(named)
    placeholders = [_placeholder(x) for x in inputs]
    with recording(recorder):
        for p in placeholders:
            recorder.add_input(p)
        output = func(*placeholders)
    meta = [(x.dim(), x.dtype.name) for x in inputs]
    program, trainable = recorder.program(output, meta)
    traced = TracedModule(program, trainable, type(func).__name__)
    if check_trace:
        _check(func, traced, inputs, check_inputs, check_tolerance)
    return traced


def _flatten_outputs(output):
    stack, flat = [output], []
    while stack:
        item = stack.pop()
        if isinstance(item, (tuple, list)):
            stack.extend(reversed(item))
        else:
            flat.append(item)
    return flat


def _random_like(inputs):
    if not any(x._data.dtype.kind == "f" for x in inputs):
        return None
    rng = np.random.default_rng(0)
    return tuple(Tensor._wrap(rng.standard_normal(x.shape).astype(x._data.dtype)) if x._data.dtype.kind == "f"
                 else x for x in inputs)


def _check(func, traced, inputs, check_inputs, tolerance):
    """Compare the program with eager execution; a mismatch means something was frozen into the trace."""
    cases = [inputs]
    extra = [_as_input_tuple(c) for c in check_inputs] if check_inputs is not None else [_random_like(inputs)]
    cases += [c for c in extra if c is not None]
    buffers = [b for b in func.buffers()] if hasattr(func, "buffers") else []
    saved_buffers = [b._data.copy() for b in buffers]
    rng_state = _random.get_rng_state()
    try:
        from ..core.grad_mode import no_grad
        with no_grad():
            for case in cases:
                _random.set_rng_state(rng_state)
                eager = _flatten_outputs(func(*case))
                replay = _flatten_outputs(traced(*case))
                for i, (e, r) in enumerate(zip(eager, replay)):
                    if not _close(e, r, tolerance):
                        warnings.warn(
                            f"Output nr {i} of the traced function does not match the corresponding output "
                            "of the Python function on a check input: the forward likely has data-dependent "
                            "control flow, randomness (e.g. dropout in training mode) or an op outside the "
                            "recorded op set whose result was frozen as a constant. Trace in eval() mode and "
                            "express branches with tensor ops.", TracerWarning, stacklevel=3)
                        return
    finally:
        for b, data in zip(buffers, saved_buffers):
            b._data[...] = data
        _random.set_rng_state(rng_state)


def _close(a, b, tolerance):
    if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
        return a == b
    if a.shape != b.shape:
        return False
    x, y = _host(a._data), _host(b._data)
    if x.dtype.kind != "f":
        return np.array_equal(x, y)
    return np.allclose(x, y, rtol=tolerance, atol=tolerance, equal_nan=True)


def _host(array):
    return array.get() if is_cuda_array(array) else np.asarray(array)


def save(m, f):
    """Write a TracedModule as an .npz holding a JSON program and its constant arrays (no pickle)."""
    if not isinstance(m, TracedModule):
        raise TypeError(f"jit.save expects a TracedModule (from jit.trace), got {type(m).__name__}")
    program = m._program
    header = {
        "format": _FORMAT, "version": _VERSION, "name": m._name,
        "inputs": program.inputs, "input_meta": program.input_meta,
        "constants": [[vid, name, bool(m._constants[vid].requires_grad)]
                      for vid, (name, _) in program.constants.items()],
        "nodes": [[node.op, node.args, node.outputs] for node in program.nodes],
        "output": program.output,
    }
    arrays = {f"c{vid}": _host(array) for vid, (_, array) in program.constants.items()}
    arrays[_PROGRAM_KEY] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    if isinstance(f, (str, bytes)) or hasattr(f, "__fspath__"):
        with open(f, "wb") as handle:
            np.savez(handle, **arrays)
    else:
        np.savez(f, **arrays)


def load(f, map_location=None):
    """Read a program written by save(); ops resolve only to disttorch's own op Functions."""
    with np.load(f, allow_pickle=False) as archive:
        if _PROGRAM_KEY not in archive.files:
            raise RuntimeError(f"{f!r} is not a disttorch.jit program (no {_PROGRAM_KEY} entry)")
        header = json.loads(archive[_PROGRAM_KEY].tobytes().decode())
        if header.get("format") != _FORMAT or header.get("version") != _VERSION:
            raise RuntimeError(f"{f!r} has format {header.get('format')} version {header.get('version')}; "
                               f"this disttorch reads {_FORMAT} version {_VERSION}")
        constants = {vid: (name, archive[f"c{vid}"]) for vid, name, _ in header["constants"]}
    trainable = {vid for vid, _, grad in header["constants"] if grad}
    nodes = [Node(op, args, outputs) for op, args, outputs in header["nodes"]]
    input_meta = [tuple(m) for m in header["input_meta"]]
    program = Program(header["inputs"], input_meta, constants, nodes, header["output"])
    traced = TracedModule(program, trainable, header.get("name", "TracedModule"))
    if map_location is not None:
        for tensor in traced._constants.values():
            tensor._data = tensor.to(map_location)._data
    return traced
