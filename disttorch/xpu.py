"""torch.xpu: Intel GPUs are not a disttorch backend; the queries answer so device-selection code moves on."""


def is_available():
    return False


def device_count():
    return 0
