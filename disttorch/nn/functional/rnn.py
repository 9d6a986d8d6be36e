"""Recurrent layers as one graph node per (layer, direction): RNN (tanh/relu), LSTM and GRU.

Each Function runs a whole sequence. The input projection for all time steps is one matmul; each
step adds only the recurrent matmul and a few fused elementwise ops. Backward walks the steps in
reverse collecting the gate gradients of every step, then forms the weight and input gradients with
one matmul each. Arrays are time-major (T, B, features); a reverse direction runs on time-flipped
views, so one body serves both directions.

Gate order is PyTorch's: LSTM (i, f, g, o), GRU (r, z, n) with n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
"""
from ...core.autograd import Function
from ...core.backend import get_array_module


def _in_order(array, reverse):
    """Time-major array viewed in processing order (flipped for the reverse direction)."""
    return array[::-1] if reverse else array


def _input_projection(x, w_ih, bias):
    xp = get_array_module(x)
    steps, batch, _ = x.shape
    projected = xp.ascontiguousarray(x).reshape(steps * batch, -1) @ w_ih.T
    if bias is not None:
        projected += bias
    return projected.reshape(steps, batch, -1)


def _weight_grads(ctx, x, w_ih, gate_grads, hidden_grads, h_prev, reverse):
    """Gradients of x, w_ih, w_hh and the two biases from per-step gate gradients (processing order).

    gate_grads: d(loss)/d(input projection); hidden_grads: d(loss)/d(recurrent projection).
    """
    x_in_order = _in_order(x, reverse)
    steps, batch, _ = x.shape
    flat_gates = gate_grads.reshape(steps * batch, -1)
    flat_hidden = hidden_grads.reshape(steps * batch, -1)
    need_x, need_w_ih, need_w_hh, need_b_ih, need_b_hh = ctx.needs_input_grad[:5]
    grad_x = grad_w_ih = grad_w_hh = grad_b_ih = grad_b_hh = None
    if need_x:
        grad_x = _in_order((flat_gates @ w_ih).reshape(x.shape), reverse)
    if need_w_ih:
        grad_w_ih = flat_gates.T @ get_array_module(x).ascontiguousarray(x_in_order).reshape(steps * batch, -1)
    if need_w_hh:
        grad_w_hh = flat_hidden.T @ h_prev.reshape(steps * batch, -1)
    if need_b_ih:
        grad_b_ih = flat_gates.sum(axis=0)
    if need_b_hh:
        grad_b_hh = flat_hidden.sum(axis=0)
    return grad_x, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh


class RNNTanhReluLayer(Function):
    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh, h0, reverse, nonlinearity):
        xp = get_array_module(x)
        bias = None if b_ih is None else b_ih + b_hh
        pre = _in_order(_input_projection(x, w_ih, bias), reverse)
        steps, batch, hidden = pre.shape
        states = xp.empty((steps + 1, batch, hidden), dtype=pre.dtype)
        states[0] = h0
        w_hh_t = w_hh.T
        relu = nonlinearity == "relu"
        for t in range(steps):
            step = states[t] @ w_hh_t
            step += pre[t]
            if relu:
                xp.maximum(step, 0, out=states[t + 1])
            else:
                xp.tanh(step, out=states[t + 1])
        ctx.save_for_backward(x, w_ih, w_hh, states)
        ctx.mode = (reverse, relu)
        return _in_order(states[1:], reverse)

    @staticmethod
    def backward(ctx, grad_out):
        x, w_ih, w_hh, states = ctx.saved_tensors
        reverse, relu = ctx.mode
        grad_out = _in_order(grad_out, reverse)
        outputs = states[1:]
        derivative = (outputs > 0).astype(outputs.dtype) if relu else 1 - outputs * outputs
        xp = get_array_module(grad_out)
        pre_grads = xp.empty_like(outputs)
        carried = xp.zeros_like(states[0])
        for t in range(outputs.shape[0] - 1, -1, -1):
            step = pre_grads[t]
            xp.add(grad_out[t], carried, out=step)
            step *= derivative[t]
            carried = step @ w_hh
        grads = _weight_grads(ctx, x, w_ih, pre_grads, pre_grads, states[:-1], reverse)
        grad_h0 = carried if ctx.needs_input_grad[5] else None
        return grads + (grad_h0, None, None)


class LSTMLayer(Function):
    """Returns (T + 1, B, H): the T outputs then the final cell state (one output array per node)."""

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh, h0, c0, reverse):
        xp = get_array_module(x)
        hidden = w_hh.shape[1]
        # sigmoid(v) = 0.5 * tanh(v / 2) + 0.5, so one tanh over all four gates serves sigmoid and tanh
        # gates alike: halve the i, f, o pre-activations (folded into the weights), then rescale.
        half = xp.full(4 * hidden, 0.5, dtype=x.dtype)
        half[2 * hidden:3 * hidden] = 1.0
        shift = half.copy()
        shift[2 * hidden:3 * hidden] = 0.0
        bias = None if b_ih is None else (b_ih + b_hh) * half
        pre = _in_order(_input_projection(x, w_ih * half[:, None], bias), reverse)
        w_hh_t = (w_hh * half[:, None]).T
        steps, batch, _ = pre.shape
        gates = xp.empty((steps, batch, 4 * hidden), dtype=x.dtype)
        states = xp.empty((steps + 1, batch, hidden), dtype=x.dtype)
        cells = xp.empty((steps + 1, batch, hidden), dtype=x.dtype)
        tanh_cells = xp.empty((steps, batch, hidden), dtype=x.dtype)
        states[0], cells[0] = h0, c0
        for t in range(steps):
            act = gates[t]
            xp.matmul(states[t], w_hh_t, out=act)
            act += pre[t]
            xp.tanh(act, out=act)
            act *= half
            act += shift
            cell = cells[t + 1]
            xp.multiply(act[:, hidden:2 * hidden], cells[t], out=cell)
            cell += act[:, :hidden] * act[:, 2 * hidden:3 * hidden]
            xp.tanh(cell, out=tanh_cells[t])
            xp.multiply(act[:, 3 * hidden:], tanh_cells[t], out=states[t + 1])
        ctx.save_for_backward(x, w_ih, w_hh, gates, states, cells, tanh_cells)
        ctx.reverse = reverse
        out = xp.empty((steps + 1, batch, hidden), dtype=x.dtype)
        out[:steps] = _in_order(states[1:], reverse)
        out[steps] = cells[steps]
        return out

    @staticmethod
    def backward(ctx, grad_packed):
        x, w_ih, w_hh, gates, states, cells, tanh_cells = ctx.saved_tensors
        reverse = ctx.reverse
        xp = get_array_module(grad_packed)
        steps, batch, four_hidden = gates.shape
        hidden = four_hidden // 4
        grad_out = _in_order(grad_packed[:steps], reverse)
        # Everything that does not depend on the carried gradients is computed for all steps at once:
        # what dc multiplies into (g, c_prev, i) and dh into (tanh c), each times its gate's derivative,
        # and o * tanh'(c).
        derivative = gates * (1 - gates)
        g_gate = gates[..., 2 * hidden:3 * hidden]
        derivative[..., 2 * hidden:3 * hidden] = 1 - g_gate * g_gate
        derivative = derivative.reshape(steps, batch, 4, hidden)
        cell_factors = xp.stack([g_gate, cells[:-1], gates[..., :hidden]], axis=2) * derivative[:, :, :3]
        hidden_factor = tanh_cells * derivative[:, :, 3]
        out_through_tanh = gates[..., 3 * hidden:] * (1 - tanh_cells * tanh_cells)
        forget = gates[..., hidden:2 * hidden]
        gate_grads = xp.empty_like(gates)
        gate_grads_by_gate = gate_grads.reshape(steps, batch, 4, hidden)
        grad_h = xp.zeros((batch, hidden), dtype=gates.dtype)
        grad_c = grad_packed[steps].copy()
        for t in range(steps - 1, -1, -1):
            grad_h += grad_out[t]
            grad_c += grad_h * out_through_tanh[t]
            by_gate = gate_grads_by_gate[t]
            xp.multiply(grad_c[:, None, :], cell_factors[t], out=by_gate[:, :3])
            xp.multiply(grad_h, hidden_factor[t], out=by_gate[:, 3])
            grad_h = gate_grads[t] @ w_hh
            grad_c *= forget[t]
        grads = _weight_grads(ctx, x, w_ih, gate_grads, gate_grads, states[:-1], reverse)
        need_h0, need_c0 = ctx.needs_input_grad[5:7]
        return grads + (grad_h if need_h0 else None, grad_c if need_c0 else None, None)


class GRULayer(Function):
    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh, h0, reverse):
        xp = get_array_module(x)
        hidden = w_hh.shape[1]
        pre = _in_order(_input_projection(x, w_ih, b_ih), reverse)
        steps, batch, _ = pre.shape
        w_hh_t = w_hh.T
        # r and z take b_hh outside the r * (...) product, so it can join the input projection there;
        # n's share (b_hn) must stay inside.
        if b_hh is not None:
            pre[..., :2 * hidden] += b_hh[:2 * hidden]
        b_hn = None if b_hh is None else b_hh[2 * hidden:]
        states = xp.empty((steps + 1, batch, hidden), dtype=x.dtype)
        reset_update = xp.empty((steps, batch, 2 * hidden), dtype=x.dtype)
        candidates = xp.empty((steps, batch, hidden), dtype=x.dtype)
        recurrent_n = xp.empty((steps, batch, hidden), dtype=x.dtype)
        states[0] = h0
        for t in range(steps):
            recurrent = states[t] @ w_hh_t
            rz = reset_update[t]
            xp.add(pre[t, :, :2 * hidden], recurrent[:, :2 * hidden], out=rz)
            _sigmoid_(xp, rz)
            hn = recurrent_n[t]
            hn[...] = recurrent[:, 2 * hidden:]
            if b_hn is not None:
                hn += b_hn
            n = candidates[t]
            xp.multiply(rz[:, :hidden], hn, out=n)
            n += pre[t, :, 2 * hidden:]
            xp.tanh(n, out=n)
            # h' = (1 - z) * n + z * h = n + z * (h - n)
            h_next = states[t + 1]
            xp.subtract(states[t], n, out=h_next)
            h_next *= rz[:, hidden:]
            h_next += n
        ctx.save_for_backward(x, w_ih, w_hh, states, reset_update, candidates, recurrent_n)
        ctx.reverse = reverse
        return _in_order(states[1:], reverse)

    @staticmethod
    def backward(ctx, grad_out):
        x, w_ih, w_hh, states, reset_update, candidates, recurrent_n = ctx.saved_tensors
        reverse = ctx.reverse
        xp = get_array_module(grad_out)
        steps, batch, hidden = candidates.shape
        grad_out = _in_order(grad_out, reverse)
        reset, update = reset_update[..., :hidden], reset_update[..., hidden:]
        rz_derivative = reset_update * (1 - reset_update)
        n_derivative = 1 - candidates * candidates
        prev_minus_n = states[:-1] - candidates
        input_grads = xp.empty((steps, batch, 3 * hidden), dtype=states.dtype)
        hidden_grads = xp.empty_like(input_grads)
        grad_h = xp.zeros((batch, hidden), dtype=states.dtype)
        for t in range(steps - 1, -1, -1):
            grad_h += grad_out[t]
            d_in = input_grads[t]
            d_hid = hidden_grads[t]
            grad_n_pre = d_in[:, 2 * hidden:]
            xp.multiply(grad_h, 1 - update[t], out=grad_n_pre)
            grad_n_pre *= n_derivative[t]
            xp.multiply(grad_n_pre, recurrent_n[t], out=d_in[:, :hidden])
            xp.multiply(grad_h, prev_minus_n[t], out=d_in[:, hidden:2 * hidden])
            d_in[:, :2 * hidden] *= rz_derivative[t]
            d_hid[:, :2 * hidden] = d_in[:, :2 * hidden]
            xp.multiply(grad_n_pre, reset[t], out=d_hid[:, 2 * hidden:])
            grad_h = grad_h * update[t] + d_hid @ w_hh
        grads = _weight_grads(ctx, x, w_ih, input_grads, hidden_grads, states[:-1], reverse)
        return grads + (grad_h if ctx.needs_input_grad[5] else None, None)


def _sigmoid_(xp, v):
    """In-place logistic via tanh, which cannot overflow the way exp(-v) can."""
    v *= 0.5
    xp.tanh(v, out=v)
    v *= 0.5
    v += 0.5
