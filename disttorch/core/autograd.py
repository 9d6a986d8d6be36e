"""Reverse-mode autograd: Function (op base class and graph node), AccumulateGrad, the backward engine.

Ops work on raw arrays. `Function.apply` does the shared work once: unwrap tensors, decide whether
to record the graph, wrap the output, and remember the versions of saved arrays so an in-place edit
between forward and backward is caught.
"""
import sys

from . import grad_mode

_UNSHARED_REFS = 3
# Below this many elements a fresh sum costs no more than checking whether an in-place one is safe.
_IN_PLACE_MIN_SIZE = 4096

_FREED_MESSAGE = (
    "Trying to backward through the graph a second time (or directly access saved tensors after they "
    "have already been freed). Saved intermediate values of the graph are freed when you call "
    ".backward() or autograd.grad(). Specify retain_graph=True if you need to backward through the "
    "graph a second time or if you need to access saved tensors after calling backward."
)

Tensor = None  # bound by tensor.py once the class exists (avoids an import cycle)

# When set (by disttorch.jit.trace), called as tracer(op_class, args, result) after every op.
tracer = None


class Function:
    """Base class of every differentiable op; an instance is both the ctx and the graph node."""

    # _edges: per forward argument, the node its gradient goes to (None for non-tensors and tensors that
    # need no gradient); the engine walks these. _tensor_args marks which arguments were tensors, so
    # next_functions can list exactly torch's (node, input_nr) pairs, one per tensor input.
    __slots__ = ("_edges", "_tensor_args", "needs_input_grad", "_saved", "_saved_versions", "_freed",
                 "_pre_hooks", "_post_hooks", "_retain_targets", "__dict__", "__weakref__")

    def save_for_backward(self, *arrays):
        self._saved = arrays

    @property
    def saved_tensors(self):
        if self._freed:
            raise RuntimeError(_FREED_MESSAGE)
        self._check_versions()
        return self._saved

    def mark_non_differentiable(self, *args):
        pass

    def name(self):
        return type(self).__name__ + "Backward0"

    def __repr__(self):
        return f"<{self.name()} object>"

    @classmethod
    def _blank(cls):
        """A fresh node, before forward fills it in."""
        ctx = cls.__new__(cls)
        ctx._saved = ()
        ctx._freed = False
        ctx._pre_hooks = None
        ctx._post_hooks = None
        return ctx

    @classmethod
    def apply(cls, *args):
        ctx = cls._blank()
        raw = []
        needs = []
        record = False
        for a in args:
            if isinstance(a, Tensor):
                raw.append(a._data)
                r = a.requires_grad
                needs.append(r)
                record = record or r
            else:
                raw.append(a)
                needs.append(False)
        ctx.needs_input_grad = needs
        out = cls.forward(ctx, *raw)
        if tracer is not None:
            return _traced(cls, ctx, args, out, record)
        return ctx._finish(args, out, record)

    def _finish(self, args, out, record):
        """The tail of apply(), shared with the traced path."""
        if not (record and grad_mode._enabled[0]):
            if isinstance(out, tuple):
                return tuple(Tensor._wrap(o) for o in out)
            return Tensor._wrap(out)
        result = Tensor._wrap(out)
        result.requires_grad = True
        result.grad_fn = self
        # One pass builds both: the edges, and which arguments are differentiable tensor inputs. Integer and
        # bool tensors (where's condition, masks) are not: torch gives them no edge. 'V' is ml_dtypes' bfloat16.
        edges = []
        tensor_args = []
        for a, needs in zip(args, self.needs_input_grad):
            if needs:
                edges.append(a.grad_fn or a._accumulator())
                tensor_args.append(True)
            else:
                edges.append(None)
                tensor_args.append(isinstance(a, Tensor) and a._data.dtype.kind in "fcV")
        self._edges = tuple(edges)
        self._tensor_args = tuple(tensor_args)
        if self._saved:
            self._record_versions(args, result)
        return result

    def _record_versions(self, args, result):
        versions = []
        for arr in self._saved:
            if arr is result._data:
                versions.append((result._vc, result._vc[0], result, 0))
                continue
            for a in args:
                if isinstance(a, Tensor) and a._data is arr:
                    versions.append((a._vc, a._vc[0], a, None))
                    break
        self._saved_versions = versions

    def _check_versions(self):
        for vc, expected, tensor, output_nr in getattr(self, "_saved_versions", ()):
            if vc[0] != expected:
                what = (f"which is output {output_nr} of {self.name()}" if output_nr is not None
                        else "which is an input of " + self.name())
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified by an "
                    f"inplace operation: [{tensor.dtype} {list(tensor.shape)}], {what}, is at version "
                    f"{vc[0]}; expected version {expected} instead. Hint: clone the tensor before "
                    "modifying it in place, or move the in-place edit after backward()."
                )

    def _run(self, grad, retain_graph):
        if self._freed:
            raise RuntimeError(_FREED_MESSAGE)
        if self._saved:
            self._check_versions()
        grads = type(self).backward(self, grad)
        if not isinstance(grads, tuple):
            grads = (grads,)
        if not retain_graph and self._saved:
            self._saved = ()
            self._saved_versions = ()
            self._freed = True
        return grads

    @property
    def next_functions(self):
        """torch's ((node, input_nr), ...): one pair per tensor input, (None, 0) where no gradient flows.

        Every disttorch op has a single output, so input_nr is always 0.
        """
        return tuple((edge, 0) for edge, is_tensor in zip(self._edges, self._tensor_args) if is_tensor)

    def register_prehook(self, fn):
        """fn(grad_outputs) -> new grad_outputs or None, run before this node's backward."""
        if self._pre_hooks is None:
            self._pre_hooks = []
        hook = _NodePreHook(fn)
        self._pre_hooks.append(hook)
        return _Handle(self._pre_hooks, hook)

    def register_hook(self, fn):
        """fn(grad_inputs, grad_outputs) -> new grad_inputs or None, run after this node's backward."""
        if self._post_hooks is None:
            self._post_hooks = []
        self._post_hooks.append(fn)
        return _Handle(self._post_hooks, fn)

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError


def _traced(cls, ctx, args, out, record):
    result = ctx._finish(args, out, record)
    tracer(cls, args, result)
    return result


class _Handle:
    def __init__(self, hooks, hook):
        self._hooks = hooks
        self._hook = hook

    def remove(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


class _NodePreHook:
    """Adapts torch's node pre-hook (a tuple of gradients) to the engine's per-tensor hook call."""
    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, grad):
        out = self.fn((grad,))
        return None if out is None else out[0]


class AccumulateGrad:
    """Sink node of a leaf tensor: runs its hooks and adds the incoming gradient into `.grad`."""

    __slots__ = ("variable", "_pre_hooks", "__weakref__")
    _edges = ()
    next_functions = ()

    def __init__(self, variable):
        self.variable = variable
        self._pre_hooks = None

    def name(self):
        return "torch::autograd::AccumulateGrad"

    def __repr__(self):
        return "<AccumulateGrad object>"

    def accumulate(self, grad):
        t = self.variable
        if grad.dtype != t._data.dtype:
            grad = grad.astype(t._data.dtype)
        if t.grad is None:
            # Adopt the buffer only when nothing else can see it (engine locals + this frame);
            # otherwise a later in-place accumulation would write through an alias.
            if not _unshared(grad):
                grad = grad.copy()
            t.grad = Tensor._wrap(grad)
        else:
            t.grad._data += grad
        for hook in t._post_acc_hooks or ():
            hook(t)


def _unshared(grad):
    """True when `grad` (and the buffer it views, if any) is referenced only by the engine."""
    if sys.getrefcount(grad) > _UNSHARED_REFS + 1:
        return False
    if 0 in grad.strides and grad.size > 1:
        return False  # a broadcast view (sum's backward): one memory cell stands for many elements
    base = grad.base
    # A view over a temporary (reshape of a fresh reduction, say) is as private as the temporary.
    return base is None or (base.base is None and sys.getrefcount(base) <= 3)


def _private_sum(prev, g):
    """True when the pending gradient `prev` may take `g` in place: same shape and dtype, and no one but the
    engine's pending table (plus the caller's and this frame's references) can see it or the buffer it views.
    Gradients routinely alias one another (add's backward passes one array to both inputs), so this must hold
    before `+=`; it does for the fresh arrays most backward rules return, saving an allocation per fan-in."""
    if sys.getrefcount(prev) > 4 or prev.shape != g.shape or prev.dtype != g.dtype:
        return False
    if not getattr(prev.flags, "writeable", True):  # numpy only; cupy arrays are always writeable
        return False
    base = prev.base
    # A reshape of a fresh product (Linear's input gradient, say) is as private as the product.
    return base is None or (base.base is None and sys.getrefcount(base) <= 3 and 0 not in prev.strides)


class SliceGrad:
    """A gradient that is zero outside one basic-index region of `shape` (what x[index]'s backward produces).

    The engine keeps it as is until another gradient for the same node arrives or the node runs: the pieces of
    a split/chunk/unbind then fill one dense array, instead of each building a zero array of the full shape
    and all of them being summed.
    """

    __slots__ = ("shape", "dtype", "index", "value")

    def __init__(self, shape, dtype, index, value):
        self.shape, self.dtype, self.index, self.value = shape, dtype, index, value

    def dense(self):
        from .backend import get_array_module
        grad = get_array_module(self.value).zeros(self.shape, dtype=self.dtype)
        grad[self.index] = self.value
        return grad


def _dense(grad):
    return grad.dense() if type(grad) is SliceGrad else grad


def _sum_with_slices(prev, g, prev_private):
    """prev + g where either is a SliceGrad; `prev_private` says a dense prev may be written in place."""
    if type(prev) is SliceGrad:
        if type(g) is SliceGrad:
            prev, prev_private = prev.dense(), True
        else:
            prev, g, prev_private = g, prev, False  # the dense one may be shared with other edges
    if prev.shape != g.shape or prev.dtype != g.dtype:
        return prev + g.dense()
    if not prev_private:
        prev = prev.copy()
    prev[g.index] += g.value
    return prev


def _run_pre_hooks(node, grad):
    """Tensor.register_hook functions and retain_grad targets of the tensor this node produced."""
    for hook in node._pre_hooks:
        if hasattr(hook, "retain_into"):
            hook.retain_into(grad)
            continue
        out = hook(Tensor._wrap(grad))
        if out is not None:
            grad = out._data
    return grad


def _run_post_hooks(node, input_grads, grad):
    """Node.register_hook functions see and may replace the gradients of the tensor inputs (torch's view)."""
    tensor_positions = [i for i, is_tensor in enumerate(node._tensor_args) if is_tensor]
    wrapped = tuple(None if input_grads[i] is None else Tensor._wrap(_dense(input_grads[i])) for i in tensor_positions)
    for hook in node._post_hooks:
        out = hook(wrapped, (Tensor._wrap(grad),))
        if out is not None:
            wrapped = tuple(out)
    result = list(input_grads)
    for i, g in zip(tensor_positions, wrapped):
        result[i] = None if g is None else g._data
    return tuple(result)


class _RetainGrad:
    __slots__ = ("tensor_ref",)

    def __init__(self, tensor_ref):
        self.tensor_ref = tensor_ref

    def retain_into(self, grad):
        t = self.tensor_ref()
        if t is None:
            return
        if t.grad is None:
            t.grad = Tensor._wrap(grad.copy())
        else:
            t.grad._data = t.grad._data + grad


def _dependencies(roots):
    """Count, for each node reachable from the roots, how many edges lead into it (iteratively)."""
    deps = {}
    stack = list(roots)
    seen = set(roots)
    while stack:
        node = stack.pop()
        for nxt in node._edges:
            if nxt is None:
                continue
            deps[nxt] = deps.get(nxt, 0) + 1
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return deps


def run_backward(roots, root_grads, retain_graph, capture=None):
    """Propagate `root_grads` from `roots` (graph nodes) to the leaves.

    With `capture` (a dict node -> None), gradients reaching those nodes are stored there instead of
    being accumulated into leaves (autograd.grad).
    """
    deps = _dependencies(roots)
    pending = {}
    ready = []
    for node, g in zip(roots, root_grads):
        if node in pending:
            pending[node] = pending[node] + g
        else:
            pending[node] = g
            if deps.get(node, 0) == 0:
                ready.append(node)
    while ready:
        node = ready.pop()
        grad = pending.pop(node, None)
        if type(grad) is SliceGrad:
            grad = grad.dense()
        if grad is not None and node._pre_hooks:
            grad = _run_pre_hooks(node, grad)
        is_leaf = type(node) is AccumulateGrad
        if capture is not None:
            if node in capture:
                capture[node] = grad
            if is_leaf:
                continue  # autograd.grad never writes into .grad
        if is_leaf:
            if grad is not None:
                node.accumulate(grad)
                grad = None
            continue
        if grad is None:
            input_grads = (None,) * len(node._edges)
        else:
            input_grads = node._run(grad, retain_graph)
            if node._post_hooks:
                input_grads = _run_post_hooks(node, input_grads, grad)
            grad = None
        for nxt, g in zip(node._edges, input_grads):
            if nxt is None:
                continue
            if g is not None:
                prev = pending.get(nxt)
                if prev is None:
                    pending[nxt] = g
                elif type(prev) is SliceGrad or type(g) is SliceGrad:
                    pending[nxt] = _sum_with_slices(prev, g, type(prev) is not SliceGrad and _private_sum(prev, g))
                elif prev.size >= _IN_PLACE_MIN_SIZE and _private_sum(prev, g):
                    prev += g
                else:
                    pending[nxt] = prev + g
                prev = None
            remaining = deps[nxt] - 1
            deps[nxt] = remaining
            if remaining == 0:
                ready.append(nxt)
        input_grads = g = None
