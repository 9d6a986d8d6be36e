"""DataParallel with CPU replicas, and SyncBatchNorm/convert_sync_batchnorm in a single process."""
import numpy as np
import pytest

import disttorch as torch
from disttorch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(5, 7)
        self.fc2 = nn.Linear(7, 3)

    def forward(self, x, scale=1.0):
        return self.fc2(torch.tanh(self.fc1(x))) * scale


def grads(model):
    return {name: p.grad.numpy().copy() for name, p in model.named_parameters()}


def run(model, x, **kwargs):
    model.zero_grad()
    out = model(x, **kwargs)
    (out ** 2).sum().backward()
    return out.detach().numpy()


@pytest.mark.parametrize("devices", [["cpu", "cpu"], ["cpu", "cpu", "cpu"]])
def test_outputs_and_gradients_match_the_plain_module(devices):
    torch.manual_seed(0)
    model = Net().double()
    x = torch.randn(9, 5, dtype=torch.float64)
    expected_out, expected_grads = run(model, x, scale=2.0), grads(model)
    parallel = nn.DataParallel(model, device_ids=devices)
    out = run(parallel, x, scale=2.0)
    np.testing.assert_allclose(out, expected_out, rtol=1e-12)
    for name, g in grads(model).items():
        np.testing.assert_allclose(g, expected_grads[name], rtol=1e-12, err_msg=name)
    assert parallel.module is model
    assert set(parallel.state_dict()) == {f"module.{k}" for k in model.state_dict()}


def test_batch_smaller_than_device_count_is_a_clear_error():
    parallel = nn.DataParallel(Net(), device_ids=["cpu", "cpu", "cpu"])
    with pytest.raises(ValueError, match="smaller than the number of devices"):
        parallel(torch.randn(2, 5))


def test_error_in_a_replica_names_the_replica():
    parallel = nn.DataParallel(Net(), device_ids=["cpu", "cpu"])
    with pytest.raises(RuntimeError, match="in replica 0"):
        parallel(torch.randn(4, 6))


def test_convert_sync_batchnorm_shares_parameters_and_buffers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Sequential(nn.BatchNorm1d(4)))
    bn = model[1]
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert isinstance(converted[1], nn.SyncBatchNorm) and isinstance(converted[2][0], nn.SyncBatchNorm)
    assert converted[1].weight is bn.weight and converted[1].running_mean is bn.running_mean
    assert list(converted.state_dict()) == list(nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3),
                                                              nn.Sequential(nn.BatchNorm1d(4))).state_dict())


def test_sync_batchnorm_without_a_process_group_is_batchnorm():
    torch.manual_seed(0)
    x = torch.randn(6, 3, 4, 4, dtype=torch.float64)
    plain, synced = nn.BatchNorm2d(3).double(), nn.SyncBatchNorm(3).double()
    np.testing.assert_allclose(synced(x).detach().numpy(), plain(x).detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(synced.running_var.numpy(), plain.running_var.numpy(), rtol=1e-12)
