"""torch.set_printoptions: how tensors print (precision, summarisation of large tensors, line width)."""
import numpy as np

_PROFILES = {
    "default": dict(precision=4, threshold=1000, edgeitems=3, linewidth=80),
    "short": dict(precision=2, threshold=1000, edgeitems=2, linewidth=80),
    "full": dict(precision=4, threshold=float("inf"), edgeitems=3, linewidth=80),
}
_options = dict(_PROFILES["default"], sci_mode=None)


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None, sci_mode=None):
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(f"Unknown print profile {profile!r}: expected one of {sorted(_PROFILES)}")
        _options.update(_PROFILES[profile])
    for name, value in (("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems),
                        ("linewidth", linewidth)):
        if value is not None:
            _options[name] = value
    _options["sci_mode"] = sci_mode


def get_printoptions():
    return dict(_options)


def format_body(data, indent):
    """The bracketed values of a tensor's repr, torch-style: integral floats as '1.', else fixed digits."""
    threshold = _options["threshold"]
    common = dict(separator=", ", threshold=int(min(threshold, np.iinfo(np.int64).max)),
                  edgeitems=_options["edgeitems"], max_line_width=_options["linewidth"] - indent, prefix=" " * indent)
    precision = _options["precision"]
    if data.dtype.kind == "f" and _options["sci_mode"]:
        body = np.array2string(data, formatter={"float_kind": lambda v: f"{v:.{precision}e}"}, **common)
    elif data.dtype.kind == "f" and data.size and np.all(np.isfinite(data)) and np.all(data == np.round(data)):
        body = np.array2string(data, formatter={"float_kind": lambda v: f"{v:.0f}."}, **common)
    elif data.dtype.kind == "f":
        body = np.array2string(data, precision=precision, floatmode="fixed", **common)
    else:
        body = np.array2string(data, **common)
    return body.replace(", ...,", ",  ...,")  # torch pads the ellipsis of a summarised row by one space
