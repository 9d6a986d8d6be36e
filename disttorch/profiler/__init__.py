"""torch.profiler: time disttorch's ops and your own ranges, print tables, write Chrome/TensorBoard traces."""
from .events import EventList, FunctionEvent, FunctionEventAvg
from .profiler import (
    ProfilerAction, ProfilerActivity, profile, record_function, schedule, supported_activities,
    tensorboard_trace_handler,
)

__all__ = ["profile", "record_function", "schedule", "tensorboard_trace_handler", "ProfilerActivity",
           "ProfilerAction", "supported_activities", "EventList", "FunctionEvent", "FunctionEventAvg"]
