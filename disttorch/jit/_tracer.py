"""Recording one forward pass into a Program through the autograd tracer hook.

Every op calls `autograd.tracer(op_class, args, result)`. The Recorder maps each tensor it has seen
(by backing array, so detached aliases and in-place writes are followed, else by object) to a value id, turns the op's arguments into
the JSON-safe encoding of `_graph`, and gives the results new value ids. Parameters and buffers of
the traced module become named constants; other tensors that appear from nowhere become anonymous
constants.

Things a trace cannot follow are reported with TracerWarning instead of being frozen silently:
turning an input-derived tensor into a Python value (bool/int/float/item/tolist/numpy, i.e.
data-dependent control flow), in-place writes that bypass the op registry, and tensors created
inside forward whose shape matches an input's batch size.
"""
import contextlib
import warnings

import numpy as np

from ..core import autograd, grad_mode
from ..core import dtype as dtypes
from ..core.device import device as Device
from ..core.ops import shape as shape_ops
from ..core.tensor import Size, Tensor
from ._graph import Node, Program, WriteThroughView, op_name
from ._graph import _value_ids as _graph_value_ids


class TracerWarning(Warning):
    """A trace recorded something that may not hold for other inputs."""


_CONVERSIONS = ("__bool__", "__int__", "__float__", "__index__", "item", "tolist", "numpy")
_UNRECORDED_WRITES = ("_fast_inplace", "zero_", "fill_", "__setitem__", "copy_")
# Tensor methods computed straight on arrays (no op Function): their results cannot be replayed.
_UNRECORDED_OPS = ("_compare", "_logical", "__invert__", "__mod__", "all", "any", "ceil", "floor", "round",
                   "sign", "isnan", "isinf", "isfinite", "logical_not", "nonzero", "isclose", "clone")


class Recorder:
    def __init__(self, named_tensors=()):
        self.by_tensor = {}
        self.by_array = {}
        self.derived = set()  # value ids that depend on an input
        self.tainted = {}  # id(tensor) -> method that computed it from inputs outside the op registry
        self.constants = {}
        self.meta = {}  # value id -> (shape, numpy dtype) seen while tracing
        self.nodes = []
        self.inputs = []
        self.batch_sizes = set()
        self.next_id = 0
        self.anonymous = 0
        self.suspended = 0
        self.quiet = 0
        self.converting = 0
        self.keep_alive = []  # ids of recorded objects must not be reused while recording
        self.names = {}
        for name, tensor in named_tensors:
            self.names.setdefault(id(tensor), name)
            self.names.setdefault(id(tensor._data), name)
            self.keep_alive.append(tensor)

    # ---- values ---------------------------------------------------------------------------------
    def new_value(self, tensor, derived):
        vid = self.next_id
        self.next_id += 1
        self.bind(tensor, vid)
        self.meta[vid] = (tuple(tensor._data.shape), tensor._data.dtype)
        if derived:
            self.derived.add(vid)
        return vid

    def bind(self, tensor, vid):
        self.by_tensor[id(tensor)] = vid
        self.by_array[id(tensor._data)] = vid
        self.keep_alive.append(tensor)
        self.keep_alive.append(tensor._data)

    def add_input(self, tensor):
        if tensor._data.ndim:
            self.batch_sizes.add(tensor._data.shape[0])
        vid = self.new_value(tensor, derived=True)
        self.inputs.append(vid)
        return vid

    def lookup(self, tensor):
        """The value id a tensor holds now, or None if the trace has not seen it."""
        # The array decides: an in-place write (or a write through a view) rebinds the memory to the
        # newest value, and every tensor object sharing that memory must see it.
        vid = self.by_array.get(id(tensor._data))
        return self.by_tensor.get(id(tensor)) if vid is None else vid

    def value_of(self, tensor):
        vid = self.lookup(tensor)
        if vid is None:
            if id(tensor) in self.tainted:
                warnings.warn(
                    f"the result of Tensor.{self.tainted[id(tensor)]} on traced inputs is not a recorded op; "
                    "it is frozen into the trace as a constant and will not follow other inputs. Use an op "
                    "such as torch.where / clamp / relu, or compute it outside the traced function.",
                    TracerWarning, stacklevel=4)
            vid = self._constant(tensor, self.quiet == 0)
        return vid

    def _constant(self, tensor, warn=True):
        name = self.names.get(id(tensor)) or self.names.get(id(tensor._data))
        array = tensor._data
        if name is None:
            name = f"_constant{self.anonymous}"
            self.anonymous += 1
            if warn:
                self._warn_if_batch_shaped(array)
            array = array.copy()  # the original may be mutated after the trace
        vid = self.new_value(tensor, derived=False)
        self.constants[vid] = (name, array, bool(tensor.requires_grad))
        return vid

    def _warn_if_batch_shaped(self, array, stacklevel=4):
        batch_like = [s for s in array.shape if s in self.batch_sizes and s > 1]
        if batch_like:
            warnings.warn(
                f"a tensor of shape {list(array.shape)} was created inside forward and is recorded as a "
                f"constant; its size {batch_like[0]} matches an input's batch size, so the traced program "
                "will be wrong for other batch sizes. Create it from the input with an op (e.g. "
                "x.new_zeros / zeros_like / expand) or pass it as an input.", TracerWarning, stacklevel=stacklevel)

    def is_derived(self, tensor):
        if id(tensor) in self.tainted:
            return True
        return self.lookup(tensor) in self.derived

    # ---- the autograd hook ------------------------------------------------------------------------
    def __call__(self, cls, args, result):
        if self.suspended:
            return
        self.record(cls, args, result)

    def record(self, cls, args, result):
        refs = set()
        # A write through a view carries the view's positions in its base; they only matter (and are
        # checked after pruning) if the base is read again.
        self.quiet += cls is shape_ops.ViewWriteBack
        try:
            encoded = [self.encode(a, refs, cls) for a in args]
        finally:
            self.quiet -= cls is shape_ops.ViewWriteBack
        if cls in _SHAPE_RULES and args and isinstance(args[0], Tensor):
            encoded[1] = _SHAPE_RULES[cls](args[0]._data.shape, args[1])
        derived = any(r in self.derived for r in refs)
        results = result if isinstance(result, tuple) else (result,)
        outputs = [self.new_value(r, derived) for r in results]
        if cls is shape_ops.ViewWriteBack:
            cls = WriteThroughView
        self.nodes.append(Node(op_name(cls), encoded, outputs, cls))
        return outputs

    def encode(self, arg, refs, cls):
        if isinstance(arg, Tensor):
            vid = self.value_of(arg)
            refs.add(vid)
            return {"v": vid}
        if arg is None or isinstance(arg, (bool, int, float, str)) and not isinstance(arg, Size):
            return arg
        if isinstance(arg, tuple):
            return {"tuple": [self.encode(a, refs, cls) for a in arg]}
        if isinstance(arg, list):
            return {"list": [self.encode(a, refs, cls) for a in arg]}
        if isinstance(arg, slice):
            return {"slice": [self.encode(p, refs, cls) for p in (arg.start, arg.stop, arg.step)]}
        if arg is Ellipsis:
            return {"ellipsis": 0}
        if isinstance(arg, np.generic):
            return {"scalar": [arg.dtype.name, arg.item()]}
        if isinstance(arg, np.dtype) or (isinstance(arg, type) and issubclass(arg, np.generic)):
            return {"np_dtype": np.dtype(arg).name}
        if isinstance(arg, dtypes.dtype):
            return {"dtype": arg.name}
        if isinstance(arg, Device):
            return {"device": str(arg)}
        if hasattr(arg, "shape") and hasattr(arg, "dtype"):
            vid = self.by_array.get(id(arg))
            if vid is None:
                vid = self._constant(Tensor._wrap(arg), self.quiet == 0)
            refs.add(vid)
            return {"a": vid}
        raise TypeError(
            f"jit.trace cannot record argument of type {type(arg).__name__} passed to op {op_name(cls)}; "
            "only tensors, arrays, numbers, strings, tuples, lists, slices, dtypes and devices are supported")

    # ---- in-place writes and conversions (installed on Tensor while tracing) -----------------------------
    def on_write(self, tensor, array):
        vid = self.by_array.get(id(array))
        if vid is not None:
            self.by_tensor[id(tensor)] = vid
            self.by_array[id(tensor._data)] = vid
            self.keep_alive.append(tensor)

    def on_snapshot(self, tensor, snapshot):
        vid = self.lookup(tensor)
        if vid is not None:
            self.bind(snapshot, vid)

    def program(self, output, input_meta):
        _check_output(output)
        encoded = self.encode(output, set(), type(None))
        constants = {vid: (name, array) for vid, (name, array, _) in self.constants.items()}
        program = Program(self.inputs, input_meta, constants, self.nodes, encoded)
        program.prune()
        for node in program.nodes:
            if node.cls is WriteThroughView:
                for vid in _graph_value_ids(node.args):
                    if vid in program.constants:
                        self._warn_if_batch_shaped(program.constants[vid][1], stacklevel=5)
        trainable = {vid for vid, (_, _, grad) in self.constants.items() if grad}
        return program, trainable


def _check_output(output):
    stack = [output]
    while stack:
        item = stack.pop()
        if isinstance(item, (tuple, list)):
            stack.extend(item)
        elif not isinstance(item, Tensor):
            raise TypeError(f"jit.trace: the traced function must return Tensors or (nested) tuples/lists of "
                            f"Tensors, got {type(item).__name__}")


def _reshape_rule(in_shape, target):
    # Keep the batch dimension free: a target that starts with the input's leading size follows it.
    spec = list(target)
    if in_shape and spec and spec[0] == in_shape[0]:
        spec[0] = {"dim": 0}
    return {"tuple": spec}


def _expand_rule(in_shape, target):
    offset = len(target) - len(in_shape)
    spec = list(target)
    for i, size in enumerate(target):
        j = i - offset
        if j >= 0 and size != 1 and in_shape[j] == size:
            spec[i] = {"dim": j}
    return {"tuple": spec}


_SHAPE_RULES = {shape_ops.Reshape: _reshape_rule, shape_ops.View: _reshape_rule, shape_ops.Expand: _expand_rule}


def _conversion_guard(recorder, name, original):
    def guarded(self, *args, **kwargs):
        if recorder.is_derived(self) and not (recorder.converting or recorder.suspended):
            warnings.warn(
                f"Tensor.{name}() was called on a tensor computed from the traced inputs: its value is "
                "used as a Python constant, so data-dependent control flow or values are frozen into the "
                "trace and it will not generalize to other inputs. Express the computation with tensor "
                "ops (e.g. torch.where) instead of Python branching on tensor values.",
                TracerWarning, stacklevel=2)
        recorder.converting += 1  # __bool__ calls item(): report the outermost conversion only
        try:
            return original(self, *args, **kwargs)
        finally:
            recorder.converting -= 1
    return guarded


def _taint_guard(recorder, name, original):
    def guarded(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        sources = [self] + [a for a in args if isinstance(a, Tensor)]
        if any(recorder.is_derived(t) for t in sources):
            for result in (out if isinstance(out, tuple) else (out,)):
                if isinstance(result, Tensor) and id(result) not in recorder.by_tensor:
                    recorder.tainted[id(result)] = name.strip("_")
                    recorder.keep_alive.append(result)
        return out
    return guarded


def _write_guard(recorder, name, original):
    def guarded(self, *args, **kwargs):
        before = recorder.lookup(self)
        was_derived = recorder.is_derived(self) and not recorder.suspended
        out = original(self, *args, **kwargs)
        if was_derived and recorder.lookup(self) == before:
            warnings.warn(
                f"in-place Tensor.{name} on a tensor computed from the traced inputs bypassed the op "
                "registry and was not recorded; the traced program will not reproduce it. Use the "
                "out-of-place form (e.g. x = x + y).", TracerWarning, stacklevel=2)
        return out
    return guarded


@contextlib.contextmanager
def recording(recorder):
    """Install the recorder as the autograd tracer and patch Tensor's escape hatches; undo on exit."""
    if autograd.tracer is not None:
        raise RuntimeError("jit.trace cannot run while another trace is being recorded")
    names = _CONVERSIONS + _UNRECORDED_WRITES + _UNRECORDED_OPS + ("_write", "_snapshot")
    saved = {name: Tensor.__dict__[name] for name in names}
    original_write, original_snapshot = saved["_write"], saved["_snapshot"]

    def write(self, array):
        original_write(self, array)
        recorder.on_write(self, array)

    def snapshot(self):
        # The copy an in-place op computes from stands for the same value as the tensor itself.
        copy = original_snapshot(self)
        recorder.on_snapshot(self, copy)
        return copy

    patches = {name: _conversion_guard(recorder, name, saved[name]) for name in _CONVERSIONS}
    patches.update({name: _write_guard(recorder, name, saved[name]) for name in _UNRECORDED_WRITES})
    patches.update({name: _taint_guard(recorder, name, saved[name]) for name in _UNRECORDED_OPS})
    patches["_write"] = write
    patches["_snapshot"] = snapshot
    for name, fn in patches.items():
        setattr(Tensor, name, fn)
    autograd.tracer = recorder
    try:
        with grad_mode.enable_grad():
            yield recorder
    finally:
        autograd.tracer = None
        for name, fn in saved.items():
            setattr(Tensor, name, fn)
