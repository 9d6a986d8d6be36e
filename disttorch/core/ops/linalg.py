"""Matrix products: matmul (with batching and broadcasting), mm, bmm, dot."""
from .. import autograd
from ..autograd import Function
from ..autocast_state import lower_precision
from ..backend import get_array_module
from ._util import check_same_device, sum_to


class Matmul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        out = a @ b
        # numpy hands back float32 for ml_dtypes' bfloat16 operands; torch keeps bfloat16.
        return out if out.dtype == a.dtype else out.astype(a.dtype)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        xp = get_array_module(g)
        # 1-d operands are promoted to matrices for the products, then the added dim is dropped.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if b.ndim == 1:
            g = xp.expand_dims(g, -1)
        if a.ndim == 1:
            g = xp.expand_dims(g, -2)
        ga = gb = None
        if need_a:
            ga = g @ xp.swapaxes(b2, -1, -2)
            ga = sum_to(ga, a2.shape).reshape(a.shape)
        if need_b:
            if b2.ndim == 2 and g.ndim > 2:
                # Batched input times a shared matrix: fold the batch into rows for one BLAS call.
                gb = a2.reshape(-1, a2.shape[-1]).T @ g.reshape(-1, g.shape[-1])
            else:
                gb = sum_to(xp.swapaxes(a2, -1, -2) @ g, b2.shape)
            gb = gb.reshape(b.shape)
        return ga, gb


def _check_operands(name, a, b):
    Tensor = autograd.Tensor
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(f"{name}(): arguments must be Tensors, got {type(a).__name__} and {type(b).__name__}")
    check_same_device(name, a, b)
    if a._data.dtype != b._data.dtype:
        raise RuntimeError(
            f"{name}: expected both operands to have the same dtype, but got {a.dtype} and {b.dtype}. "
            "Cast one with .to(dtype)."
        )


@lower_precision
def matmul(a, b):
    _check_operands("matmul", a, b)
    sa, sb = a._data.shape, b._data.shape
    if a._data.ndim == 0 or b._data.ndim == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are {len(sa)}D and {len(sb)}D")
    inner_a = sa[-1]
    inner_b = sb[0] if len(sb) == 1 else sb[-2]
    if inner_a != inner_b:
        if len(sa) <= 2 and len(sb) <= 2:
            raise RuntimeError(
                f"mat1 and mat2 shapes cannot be multiplied ({'x'.join(map(str, sa if len(sa) == 2 else (1,) + sa))} "
                f"and {'x'.join(map(str, sb if len(sb) == 2 else sb + (1,)))})"
            )
        raise RuntimeError(f"matmul: shapes {list(sa)} and {list(sb)} cannot be multiplied (inner sizes {inner_a} != {inner_b})")
    try:
        return Matmul.apply(a, b)
    except ValueError:
        raise RuntimeError(f"matmul: batch dimensions of {list(sa)} and {list(sb)} cannot be broadcast") from None


@lower_precision
def mm(a, b):
    _check_operands("mm", a, b)
    if a._data.ndim != 2 or b._data.ndim != 2:
        raise RuntimeError(f"mm: expected 2D tensors, got {a._data.ndim}D and {b._data.ndim}D")
    return matmul(a, b)


@lower_precision
def bmm(a, b):
    _check_operands("bmm", a, b)
    if a._data.ndim != 3 or b._data.ndim != 3:
        raise RuntimeError(f"batch1 must be a 3D tensor, got {a._data.ndim}D and {b._data.ndim}D")
    if a._data.shape[0] != b._data.shape[0]:
        raise RuntimeError(f"bmm: batch sizes differ: {a._data.shape[0]} and {b._data.shape[0]}")
    return matmul(a, b)


def dot(a, b):
    _check_operands("dot", a, b)
    if a._data.ndim != 1 or b._data.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {a._data.ndim}D and {b._data.ndim}D tensors")
    if a._data.shape != b._data.shape:
        raise RuntimeError(
            f"inconsistent tensor size, expected tensor [{a._data.shape[0]}] and src [{b._data.shape[0]}] "
            "to have the same number of elements, but got different"
        )
    return matmul(a, b)



class Einsum(Function):
    """einsum over explicit single-letter subscripts (the wrapper below removes '...' first).

    The gradient of operand i is itself an einsum: the output gradient contracted with the other operands
    onto operand i's subscripts; letters only operand i has were summed away, so they come back by
    broadcasting.
    """

    @staticmethod
    def forward(ctx, subscripts, *operands):
        inputs, output = subscripts
        ctx.subscripts = subscripts
        ctx.save_for_backward(*operands)
        xp = get_array_module(operands[0])
        return xp.asarray(xp.einsum(",".join(inputs) + "->" + output, *operands, optimize=len(operands) > 2))

    @staticmethod
    def backward(ctx, g):
        inputs, output = ctx.subscripts
        operands = ctx.saved_tensors
        xp = get_array_module(g)
        grads = [None]
        for i, (subs, x) in enumerate(zip(inputs, operands)):
            if not ctx.needs_input_grad[i + 1]:
                grads.append(None)
                continue
            other_subs = [output] + [s for j, s in enumerate(inputs) if j != i]
            others = [g] + [o for j, o in enumerate(operands) if j != i]
            available = set("".join(other_subs))
            kept = "".join(c for c in subs if c in available)
            partial = xp.einsum(",".join(other_subs) + "->" + kept, *others, optimize=len(others) > 2)
            shape = tuple(size if c in available else 1 for c, size in zip(subs, x.shape))
            grads.append(xp.broadcast_to(xp.asarray(partial).reshape(shape), x.shape).astype(x.dtype, copy=False))
        return tuple(grads)


def _parse_einsum(equation, operands):
    """Explicit per-operand subscripts and output, with every '...' replaced by spare letters."""
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise RuntimeError(f"einsum(): {len(terms)} subscript terms for {len(operands)} operands")
    spare = iter(c for c in "ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkjihgfedcba" if c not in equation)
    ellipsis_rank = max((op._data.ndim - len(t.replace("...", "")) for t, op in zip(terms, operands) if "..." in t),
                        default=0)
    ellipsis_letters = "".join(next(spare) for _ in range(ellipsis_rank))
    inputs = []
    for term, op in zip(terms, operands):
        if "..." in term:
            n = op._data.ndim - len(term.replace("...", ""))
            term = term.replace("...", ellipsis_letters[ellipsis_rank - n:])
        if len(term) != op._data.ndim:
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({len(term)}) does not match the "
                               f"number of dimensions ({op._data.ndim}) for operand {len(inputs)}")
        inputs.append(term)
    if arrow:
        output = rhs.replace("...", ellipsis_letters)
    else:
        letters = "".join(inputs)
        output = ellipsis_letters + "".join(sorted(c for c in set(letters) if letters.count(c) == 1
                                                   and c not in ellipsis_letters))
    return inputs, output


def einsum(equation, *operands):
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    inputs, output = _parse_einsum(equation, operands)
    # Letters whose sizes differ only by broadcasting (size 1 against n) are expanded first, so the
    # Function sees equal sizes and expand's backward sums the broadcast gradient.
    sizes = {}
    for subs, op in zip(inputs, operands):
        for c, n in zip(subs, op._data.shape):
            sizes[c] = max(sizes.get(c, 1), n)
    expanded = []
    for subs, op in zip(inputs, operands):
        target = tuple(sizes[c] for c in subs)
        expanded.append(op if op._data.shape == target else op.expand(*target))
    for subs, op in zip(inputs, operands):
        if len(set(subs)) != len(subs) and op.requires_grad:
            raise NotImplementedError(f"einsum(): a repeated subscript within one operand ('{subs}', a diagonal) is "
                                      "not differentiable in disttorch; take torch.diagonal first")
    return Einsum.apply((tuple(inputs), output), *expanded)


def outer(a, b):
    return a.reshape(-1, 1) * b.reshape(1, -1)


@lower_precision
def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    product = mm(mat1, mat2)
    return (input if beta == 1 else input * beta) + (product if alpha == 1 else product * alpha)


@lower_precision
def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):
    product = bmm(batch1, batch2)
    return (input if beta == 1 else input * beta) + (product if alpha == 1 else product * alpha)


def tensordot(a, b, dims=2):
    if isinstance(dims, int):
        dims_a = list(range(a._data.ndim - dims, a._data.ndim))
        dims_b = list(range(dims))
    else:
        dims_a, dims_b = ([d] if isinstance(d, int) else list(d) for d in dims)
    letters = iter("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    subs_a = [next(letters) for _ in range(a._data.ndim)]
    subs_b = [next(letters) for _ in range(b._data.ndim)]
    for da, db in zip(dims_a, dims_b):
        subs_b[db] = subs_a[da]
    contracted = {subs_a[d] for d in dims_a}
    out = [c for c in subs_a if c not in contracted] + [c for c in subs_b if c not in contracted]
    return einsum("".join(subs_a) + "," + "".join(subs_b) + "->" + "".join(out), a, b)
