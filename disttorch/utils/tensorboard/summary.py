"""Summary protos for SummaryWriter: scalars, histograms, PNG images, text and hparams (tensorboard's formats)."""
import struct
import zlib

import numpy as np
from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary, SummaryMetadata
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.plugins.hparams import api_pb2, metadata as hparams_metadata, plugin_data_pb2


def to_numpy(value):
    """Tensors (disttorch's, detached to CPU), numpy arrays, Python numbers and lists -> numpy."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        return np.asarray(value.detach().cpu().numpy())
    return np.asarray(value)


def scalar(tag, value):
    array = to_numpy(value)
    if array.size != 1:
        raise ValueError(f"add_scalar expects a single number for {tag!r}, got an array of shape {array.shape}")
    return Summary(value=[Summary.Value(tag=tag, simple_value=float(array.reshape(())))])


def histogram(tag, values, bins, max_bins=None):
    array = to_numpy(values).astype(np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError(f"add_histogram got no values for {tag!r}")
    if isinstance(bins, str) and bins == "tensorflow":
        bins = "auto"  # tensorflow's exponential buckets need its C++ code; numpy's estimator reads the same
    counts, limits = np.histogram(array, bins=bins)
    if max_bins is not None and len(counts) > max_bins:
        counts, limits = np.histogram(array, bins=max_bins)
    proto = HistogramProto(min=float(array.min()), max=float(array.max()), num=int(array.size),
                           sum=float(array.sum()), sum_squares=float(np.dot(array, array)),
                           bucket_limit=[float(limit) for limit in limits[1:]],
                           bucket=[float(count) for count in counts])
    return Summary(value=[Summary.Value(tag=tag, histo=proto)])


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(pixels):
    """An H x W x C uint8 array (C = 1, 3 or 4) as PNG bytes, without an imaging library."""
    height, width, channels = pixels.shape
    color_type = {1: 0, 3: 2, 4: 6}[channels]
    rows = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height))  # filter type 0 per row
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(rows))
            + _png_chunk(b"IEND", b""))


def to_hwc_uint8(image, dataformats):
    """An image in `dataformats` (CHW, HWC, HW; float in [0, 1] or uint8) -> H x W x C uint8."""
    array = to_numpy(image)
    dataformats = dataformats.upper()
    if array.ndim != len(dataformats):
        raise ValueError(f"image of shape {array.shape} does not match dataformats={dataformats!r}")
    if dataformats == "HW":
        array = array[:, :, None]
    elif dataformats == "CHW":
        array = array.transpose(1, 2, 0)
    elif dataformats != "HWC":
        raise ValueError(f"dataformats must be one of CHW, HWC, HW for a single image, got {dataformats!r}")
    if array.dtype != np.uint8:
        array = np.clip(array.astype(np.float64) * 255 + 0.5, 0, 255).astype(np.uint8)
    if array.shape[2] == 2 or array.shape[2] > 4:
        raise ValueError(f"an image needs 1, 3 or 4 channels, got {array.shape[2]}")
    return np.ascontiguousarray(array)


def image(tag, pixels):
    height, width, channels = pixels.shape
    proto = Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=encode_png(pixels))
    return Summary(value=[Summary.Value(tag=tag, image=proto)])


def text(tag, string):
    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="text"))
    tensor = TensorProto(dtype="DT_STRING", string_val=[string.encode("utf-8")],
                         tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]))
    return Summary(value=[Summary.Value(tag=tag + "/text_summary", metadata=metadata, tensor=tensor)])


def _hparams_summary(tag, plugin_data):
    metadata = hparams_metadata.create_summary_metadata(plugin_data)
    return Summary(value=[Summary.Value(tag=tag, metadata=metadata)])


def hparams(hparam_dict, metric_dict, hparam_domain_discrete=None):
    """The three summaries TensorBoard's HPARAMS tab reads: experiment, session start, session end."""
    hparam_domain_discrete = hparam_domain_discrete or {}
    start = plugin_data_pb2.SessionStartInfo()
    infos = []
    for name, value in hparam_dict.items():
        if value is None:
            continue
        if hasattr(value, "item") and not isinstance(value, (bool, int, float, str)):
            value = value.item()
        if isinstance(value, bool):
            start.hparams[name].bool_value = value
            kind = api_pb2.DATA_TYPE_BOOL
        elif isinstance(value, (int, float)):
            start.hparams[name].number_value = value
            kind = api_pb2.DATA_TYPE_FLOAT64
        elif isinstance(value, str):
            start.hparams[name].string_value = value
            kind = api_pb2.DATA_TYPE_STRING
        else:
            raise ValueError(f"hparam {name!r} has a value of type {type(value).__name__}; use a bool, number, "
                             "string or tensor")
        info = api_pb2.HParamInfo(name=name, type=kind)
        if name in hparam_domain_discrete:
            info.domain_discrete.extend(hparam_domain_discrete[name])
        infos.append(info)
    experiment = api_pb2.Experiment(
        hparam_infos=infos, metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in metric_dict])
    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS)
    return (_hparams_summary(hparams_metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=experiment)),
            _hparams_summary(hparams_metadata.SESSION_START_INFO_TAG,
                             plugin_data_pb2.HParamsPluginData(session_start_info=start)),
            _hparams_summary(hparams_metadata.SESSION_END_INFO_TAG,
                             plugin_data_pb2.HParamsPluginData(session_end_info=end)))
