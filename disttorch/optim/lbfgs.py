"""L-BFGS (limited-memory BFGS) with torch's defaults, its state layout and an optional strong-Wolfe
line search (cubic interpolation, as in Mark Schmidt's minFunc, which torch follows too).

All vectors are flat arrays over every parameter, in the parameters' dtype, so a float64 model follows
torch's float64 iterates step for step.
"""
from ..core.backend import get_array_module
from ..core.grad_mode import enable_grad, no_grad
from ..core.tensor import Tensor
from .optimizer import Optimizer


def _cubic_minimum(x1, f1, g1, x2, f2, g2, bounds=None):
    """Minimiser of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to `bounds` (default: [x1, x2]);
    the midpoint when the cubic has no minimum."""
    low, high = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    discriminant = d1 * d1 - g1 * g2
    if discriminant < 0:
        return (low + high) / 2.0
    d2 = discriminant ** 0.5
    if x1 <= x2:
        position = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        position = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(position, low), high)


def _strong_wolfe(evaluate, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """Find a step t along d meeting the strong Wolfe conditions.

    evaluate(t) -> (loss, flat_grad) at x + t*d. Returns (loss, flat_grad, t, evaluations).
    Phase 1 grows the step until a bracket [lo, hi] holding an acceptable point is found; phase 2 (zoom)
    shrinks the bracket by cubic interpolation, nudging away from its ends when progress stalls.
    """
    d_norm = float(abs(d).max())
    f_new, g_new = evaluate(t)
    evaluations = 1
    gtd_new = float(g_new @ d)
    t_prev, f_prev, g_prev, gtd_prev = 0.0, f, g.copy(), gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > f + c1 * t * gtd or (ls_iter > 1 and f_new >= f_prev):
            bracket = [[t_prev, f_prev, g_prev, gtd_prev], [t, f_new, g_new.copy(), gtd_new]]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket = [[t, f_new, g_new, gtd_new]]
            done = True
            break
        if gtd_new >= 0:
            bracket = [[t_prev, f_prev, g_prev, gtd_prev], [t, f_new, g_new.copy(), gtd_new]]
            break
        # Extrapolate: somewhere between just past t and ten times t.
        next_t = _cubic_minimum(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                                bounds=(t + 0.01 * (t - t_prev), t * 10))
        t_prev, f_prev, g_prev, gtd_prev = t, f_new, g_new.copy(), gtd_new
        t = next_t
        f_new, g_new = evaluate(t)
        evaluations += 1
        gtd_new = float(g_new @ d)
        ls_iter += 1
    if ls_iter == max_ls:
        bracket = [[0.0, f, g, gtd], [t, f_new, g_new, gtd_new]]

    insufficient_progress = False
    low, high = (0, 1) if bracket[0][1] <= bracket[-1][1] else (1, 0)
    while not done and ls_iter < max_ls:
        (t_a, f_a, _, gtd_a), (t_b, f_b, _, gtd_b) = bracket
        if abs(t_b - t_a) * d_norm < tolerance_change:
            break
        t = _cubic_minimum(t_a, f_a, gtd_a, t_b, f_b, gtd_b)
        top, bottom = max(t_a, t_b), min(t_a, t_b)
        margin = 0.1 * (top - bottom)
        if min(top - t, t - bottom) < margin:
            # Too close to an end of the bracket: accept once, then push inward by `margin`.
            if insufficient_progress or t >= top or t <= bottom:
                t = top - margin if abs(t - top) < abs(t - bottom) else bottom + margin
                insufficient_progress = False
            else:
                insufficient_progress = True
        else:
            insufficient_progress = False
        f_new, g_new = evaluate(t)
        evaluations += 1
        gtd_new = float(g_new @ d)
        ls_iter += 1
        if f_new > f + c1 * t * gtd or f_new >= bracket[low][1]:
            bracket[high] = [t, f_new, g_new.copy(), gtd_new]
            low, high = (0, 1) if bracket[0][1] <= bracket[1][1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high][0] - bracket[low][0]) >= 0:
                bracket[high] = list(bracket[low])
            bracket[low] = [t, f_new, g_new.copy(), gtd_new]
    t, f_new, g_new, _ = bracket[low] if len(bracket) > 1 else bracket[0]
    return f_new, g_new, t, evaluations


class LBFGS(Optimizer):
    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9,
                 history_size=100, line_search_fn=None):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        if line_search_fn not in (None, "strong_wolfe"):
            raise RuntimeError("only 'strong_wolfe' is supported")
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                        tolerance_change=tolerance_change, history_size=history_size, line_search_fn=line_search_fn)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]

    def _flat_grad(self):
        parts = []
        for p in self._params:
            xp = get_array_module(p._data)
            parts.append(xp.zeros(p._data.size, p._data.dtype) if p.grad is None else p.grad._data.reshape(-1))
        return get_array_module(parts[0]).concatenate(parts)

    def _add_to_params(self, step, direction):
        offset = 0
        for p in self._params:
            n = p._data.size
            p._data += step * direction[offset:offset + n].reshape(p._data.shape)
            p._vc[0] += 1
            offset += n

    def _param_copies(self):
        return [p._data.copy() for p in self._params]

    def _restore(self, copies):
        for p, saved in zip(self._params, copies):
            p._data[...] = saved
            p._vc[0] += 1

    def step(self, closure):
        """One call runs up to max_iter iterations; closure() must zero the grads, compute the loss,
        call backward() and return the loss (it is called several times)."""
        if closure is None:
            raise RuntimeError("LBFGS requires a closure: optimizer.step(closure), where closure recomputes the "
                               "loss and its gradients")
        with no_grad():
            return self._step(closure)

    def _evaluate(self, closure):
        with enable_grad():
            loss = closure()
        return loss

    def _step(self, closure):
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        history_size, line_search_fn = group["history_size"], group["line_search_fn"]
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = self._evaluate(closure)
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        flat_grad = self._flat_grad()
        if float(abs(flat_grad).max()) <= tolerance_grad:
            return orig_loss

        d = _array(state.get("d"))
        t = state.get("t")
        old_dirs = [_array(v) for v in state.get("old_dirs", [])]
        old_stps = [_array(v) for v in state.get("old_stps", [])]
        ro = list(state.get("ro", []))
        h_diag = state.get("H_diag")
        prev_flat_grad = _array(state.get("prev_flat_grad"))
        prev_loss = state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_stps, ro = [], [], []
                h_diag = 1.0
            else:
                # Curvature pair from the last step; kept only when it keeps the Hessian estimate positive.
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = float(y @ s)
                if ys > 1e-10:
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    h_diag = ys / float(y @ y)
                # Two-loop recursion: d = -H g with H the L-BFGS inverse-Hessian estimate.
                alphas = [0.0] * len(old_dirs)
                q = -flat_grad
                for i in range(len(old_dirs) - 1, -1, -1):
                    alphas[i] = float(old_stps[i] @ q) * ro[i]
                    q = q - alphas[i] * old_dirs[i]
                d = q * h_diag
                for i in range(len(old_dirs)):
                    beta = float(old_dirs[i] @ d) * ro[i]
                    d = d + (alphas[i] - beta) * old_stps[i]

            prev_flat_grad = flat_grad.copy()
            prev_loss = loss
            # The first step is scaled so its length is at most lr; later steps start at lr.
            t = min(1.0, 1.0 / float(abs(flat_grad).sum())) * lr if state["n_iter"] == 1 else lr
            gtd = float(flat_grad @ d)
            if gtd > -tolerance_change:
                break  # not a descent direction

            evaluations = 0
            if line_search_fn is not None:
                start = self._param_copies()

                def evaluate(step):
                    self._add_to_params(step, d)
                    value = float(self._evaluate(closure))
                    gradient = self._flat_grad()
                    self._restore(start)
                    return value, gradient

                loss, flat_grad, t, evaluations = _strong_wolfe(evaluate, t, d, loss, flat_grad, gtd)
                self._add_to_params(t, d)
                converged = float(abs(flat_grad).max()) <= tolerance_grad
            else:
                self._add_to_params(t, d)
                converged = False
                if n_iter != max_iter:
                    loss = float(self._evaluate(closure))
                    flat_grad = self._flat_grad()
                    converged = float(abs(flat_grad).max()) <= tolerance_grad
                    evaluations = 1
            current_evals += evaluations
            state["func_evals"] += evaluations

            if n_iter == max_iter or current_evals >= max_eval or converged:
                break
            if float(abs(d * t).max()) <= tolerance_change:
                break
            if abs(loss - prev_loss) < tolerance_change:
                break

        state["d"] = _tensor(d)
        state["t"] = t
        state["old_dirs"] = [_tensor(v) for v in old_dirs]
        state["old_stps"] = [_tensor(v) for v in old_stps]
        state["ro"] = ro
        state["H_diag"] = h_diag
        state["prev_flat_grad"] = _tensor(prev_flat_grad)
        state["prev_loss"] = prev_loss
        return orig_loss


def _array(value):
    return value._data if isinstance(value, Tensor) else value


def _tensor(array):
    return None if array is None else Tensor._wrap(array)
