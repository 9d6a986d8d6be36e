"""disttorch.quantization: int8 inference (dynamic and static post-training quantization).

    qmodel = quantize_dynamic(model, {nn.Linear, nn.LSTM}, dtype=qint8)

    model.qconfig = get_default_qconfig()
    prepared = prepare(model.eval())
    for x, _ in calibration_batches:
        prepared(x)
    qmodel = convert(prepared)

Weights are int8 with one symmetric scale per output channel; activations are quantized per tensor
(dynamically, or with calibrated quint8 scale/zero point); layers take and return float32 tensors.
"""
from ._qtypes import (  # noqa: F401
    QuantizedDType,
    per_channel_affine,
    per_channel_symmetric,
    per_tensor_affine,
    per_tensor_symmetric,
    qint8,
    qint32,
    quint8,
)
from .modules import (  # noqa: F401
    DynamicQuantizedLinear,
    DynamicQuantizedLSTM,
    QuantizedConv2d,
    QuantizedLinear,
)
from .observer import (  # noqa: F401
    HistogramObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    PerChannelMinMaxObserver,
    default_histogram_observer,
    default_observer,
    default_per_channel_weight_observer,
)
from .quantize import (  # noqa: F401
    QConfig,
    convert,
    default_qconfig,
    get_default_qconfig,
    model_size_bytes,
    prepare,
    quantize,
    quantize_dynamic,
)
