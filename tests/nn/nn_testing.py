"""Helpers for comparing disttorch.nn against PyTorch: copy state across, convert tensors both ways."""
import numpy as np

import disttorch


def to_numpy(t):
    return t.detach().numpy()


def torch_state_to_ours(torch_module, our_module):
    """Load torch_module's state into our_module through state_dict (so the keys must agree)."""
    state = {k: disttorch.tensor(v.detach().numpy()) for k, v in torch_module.state_dict().items()}
    our_module.load_state_dict(state)


def pair_inputs(torch, array, requires_grad=True):
    ours = disttorch.tensor(array, requires_grad=requires_grad)
    ref = torch.tensor(array, requires_grad=requires_grad)
    return ours, ref


def assert_close(ours, ref, rtol=1e-6, atol=1e-8, err_msg=""):
    np.testing.assert_allclose(to_numpy(ours), ref.detach().numpy(), rtol=rtol, atol=atol, err_msg=err_msg)


def assert_same_grads(our_module, torch_module, rtol=1e-6, atol=1e-8):
    ours = dict(our_module.named_parameters())
    ref = dict(torch_module.named_parameters())
    assert list(ours) == list(ref)
    for name, param in ref.items():
        if param.grad is None:
            assert ours[name].grad is None, name
            continue
        assert ours[name].grad is not None, f"{name} got no gradient"
        assert_close(ours[name].grad, param.grad, rtol, atol, err_msg=name)
