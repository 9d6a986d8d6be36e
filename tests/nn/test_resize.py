"""Padding and resampling layers against PyTorch: outputs, input gradients and reprs."""
import numpy as np
import pytest
from nn_testing import assert_close, pair_inputs

import disttorch
from disttorch import nn
from disttorch.nn import functional as F

torch = pytest.importorskip("torch")

CASES = [
    ("zero_pad2d", lambda m: m.ZeroPad2d((1, 2, 0, 3)), (2, 3, 4, 5)),
    ("constant_pad1d", lambda m: m.ConstantPad1d(2, 3.5), (2, 3, 4)),
    ("reflection_pad1d", lambda m: m.ReflectionPad1d((3, 1)), (2, 3, 5)),
    ("reflection_pad2d", lambda m: m.ReflectionPad2d(2), (1, 2, 4, 5)),
    ("replication_pad2d", lambda m: m.ReplicationPad2d((1, 3, 2, 0)), (1, 2, 3, 4)),
    ("replication_pad3d", lambda m: m.ReplicationPad3d(1), (1, 1, 2, 3, 2)),
    ("circular_pad2d", lambda m: m.CircularPad2d((2, 1, 1, 3)), (1, 2, 3, 4)),
    ("upsample_nearest", lambda m: m.Upsample(scale_factor=2), (2, 3, 4, 5)),
    ("upsample_nearest_size", lambda m: m.Upsample(size=(7, 3)), (1, 2, 4, 5)),
    ("upsample_nearest_exact", lambda m: m.Upsample(size=(7, 3), mode="nearest-exact"), (1, 2, 4, 5)),
    ("upsample_nearest_1d_fractional", lambda m: m.Upsample(scale_factor=1.7), (1, 2, 5)),
    ("upsample_linear", lambda m: m.Upsample(scale_factor=3, mode="linear"), (2, 2, 4)),
    ("upsample_bilinear", lambda m: m.Upsample(size=(5, 7), mode="bilinear"), (2, 2, 3, 4)),
    ("upsample_bilinear_scale", lambda m: m.Upsample(scale_factor=2.5, mode="bilinear"), (1, 2, 3, 4)),
    ("upsample_bilinear_corners", lambda m: m.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
     (1, 2, 3, 4)),
    ("upsampling_bilinear2d", lambda m: m.UpsamplingBilinear2d(size=(6, 2)), (1, 2, 3, 4)),
    ("upsample_trilinear", lambda m: m.Upsample(scale_factor=2, mode="trilinear"), (1, 1, 2, 3, 2)),
    ("pixel_shuffle", lambda m: m.PixelShuffle(2), (2, 8, 3, 4)),
    ("pixel_unshuffle", lambda m: m.PixelUnshuffle(2), (2, 2, 4, 6)),
]


@pytest.mark.parametrize("name,make,shape", CASES, ids=[c[0] for c in CASES])
def test_resize_layer_matches_torch(name, make, shape):
    ours, ref = make(nn), make(torch.nn)
    assert repr(ours) == repr(ref)
    x, x_ref = pair_inputs(torch, np.random.default_rng(0).standard_normal(shape))
    out, out_ref = ours(x), ref(x_ref)
    assert tuple(out.shape) == tuple(out_ref.shape)
    assert_close(out, out_ref)
    probe = np.random.default_rng(1).standard_normal(tuple(out_ref.shape))
    out.backward(disttorch.tensor(probe))
    out_ref.backward(torch.tensor(probe))
    assert_close(x.grad, x_ref.grad)


def test_pad_errors():
    with pytest.raises(RuntimeError, match="less than the corresponding input dimension"):
        F.pad(disttorch.randn(1, 1, 3), (3, 0), mode="reflect")
    with pytest.raises(NotImplementedError, match="Unrecognised padding mode"):
        F.pad(disttorch.randn(1, 1, 3), (1, 1), mode="mirror")


def test_interpolate_argument_errors():
    x = disttorch.randn(1, 1, 4, 4)
    with pytest.raises(ValueError, match="only one of size or scale_factor"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="align_corners option"):
        F.interpolate(x, scale_factor=2, align_corners=True)
    with pytest.raises(NotImplementedError, match="bilinear mode needs 4D input"):
        F.interpolate(disttorch.randn(1, 1, 4), scale_factor=2, mode="bilinear")
