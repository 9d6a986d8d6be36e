"""torch.profiler.profile with its schedule/step protocol, record_function, and the trace handler."""
import contextlib
import enum
import gzip
import json
import os
import socket
import time
import warnings

from . import events


class ProfilerActivity(enum.Enum):
    CPU = 0
    CUDA = 1
    XPU = 2
    MTIA = 3
    HPU = 4
    PrivateUse1 = 5


def supported_activities():
    return {ProfilerActivity.CPU}


class ProfilerAction(enum.Enum):
    NONE = 0
    WARMUP = 1
    RECORD = 2
    RECORD_AND_SAVE = 3


def schedule(*, wait, warmup, active, repeat=0, skip_first=0, skip_first_wait=0):
    """Steps to skip, then cycles of `wait` idle steps, `warmup` steps and `active` recorded steps; the last
    active step of each cycle hands the trace to on_trace_ready. repeat=0 cycles until the profiler stops."""
    if wait < 0 or warmup < 0 or active <= 0 or repeat < 0 or skip_first < 0:
        raise ValueError("Invalid profiler schedule arguments: wait, warmup, repeat and skip_first must be >= 0 "
                         "and active > 0")
    if warmup == 0:
        warnings.warn("Profiler won't be using warmup, this can skew profiler results", UserWarning, stacklevel=2)

    def schedule_fn(step):
        if step < skip_first:
            return ProfilerAction.NONE
        step -= skip_first
        if skip_first_wait and step < wait:
            return ProfilerAction.NONE
        num_steps = wait + warmup + active
        if repeat > 0 and step / num_steps >= repeat:
            return ProfilerAction.NONE
        mod_step = step % num_steps
        if mod_step < wait:
            return ProfilerAction.NONE
        if mod_step < wait + warmup:
            return ProfilerAction.WARMUP
        return ProfilerAction.RECORD if mod_step < num_steps - 1 else ProfilerAction.RECORD_AND_SAVE
    return schedule_fn


def _always_record(step):
    return ProfilerAction.RECORD


_RECORDING = (ProfilerAction.RECORD, ProfilerAction.RECORD_AND_SAVE)


class profile:
    """Records disttorch's ops (forward and backward) and record_function ranges on the CPU.

    Times are wall-clock on the calling thread; memory, stack and FLOP options are accepted and not
    recorded. Asking for CUDA activity on a machine without a GPU warns and profiles the CPU only.
    """

    def __init__(self, *, activities=None, schedule=None, on_trace_ready=None, record_shapes=False,
                 profile_memory=False, with_stack=False, with_flops=False, with_modules=False,
                 experimental_config=None, execution_trace_observer=None, acc_events=False, use_cuda=None,
                 custom_trace_id_callback=None):
        self.activities = set(activities) if activities else supported_activities()
        if use_cuda:
            self.activities.add(ProfilerActivity.CUDA)
        unsupported = self.activities - supported_activities()
        if unsupported:
            names = ", ".join(sorted(activity.name for activity in unsupported))
            warnings.warn(f"disttorch profiles the CPU only; {names} activity is not recorded", UserWarning,
                          stacklevel=2)
        self.schedule = schedule or _always_record
        self.on_trace_ready = on_trace_ready
        self.record_shapes = record_shapes
        self.profile_memory = profile_memory
        self.with_stack = with_stack
        self.with_flops = with_flops
        self.with_modules = with_modules
        self.step_num = 0
        self.current_action = ProfilerAction.NONE
        self._recorder = None
        self._finished = None  # the last completed window, what events()/key_averages() report

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self.stop()

    def start(self):
        self.current_action = self.schedule(self.step_num)
        if self.current_action in _RECORDING:
            self._begin()

    def stop(self):
        if self._recorder is not None:
            self._finish(notify=True)
        self.current_action = ProfilerAction.NONE

    def step(self):
        """Mark the end of a training step; a window that ends here goes to on_trace_ready."""
        previous = self.current_action
        self.step_num += 1
        self.current_action = self.schedule(self.step_num)
        if previous == ProfilerAction.RECORD_AND_SAVE or (
                previous in _RECORDING and self.current_action not in _RECORDING):
            self._finish(notify=True)
        if self.current_action in _RECORDING and self._recorder is None:
            self._begin()

    def _begin(self):
        self._recorder = events.Recorder(self.record_shapes)
        events.start_recording(self._recorder)

    def _finish(self, notify):
        recorder, self._recorder = self._recorder, None
        events.stop_recording(recorder)
        self._finished = recorder
        if notify and self.on_trace_ready is not None:
            self.on_trace_ready(self)

    def _window(self):
        if self._finished is None:
            if self._recorder is not None:
                raise RuntimeError("the profiler is still recording; read its results after it stops (leave the "
                                   "`with` block, call stop(), or wait for on_trace_ready)")
            raise RuntimeError("the profiler has recorded nothing yet: check its schedule and call step() once per "
                               "iteration")
        return self._finished

    def events(self):
        return events.EventList(self._window().events)

    def key_averages(self, group_by_input_shape=False, group_by_stack_n=0, group_by_overload_name=False):
        return self.events().key_averages(group_by_input_shape)

    def export_chrome_trace(self, path):
        trace = self._window().chrome_trace()
        opener = gzip.open if os.fspath(path).endswith(".gz") else open
        with opener(path, "wt", encoding="utf-8") as handle:
            json.dump(trace, handle)

    def export_stacks(self, path, metric="self_cpu_time_total"):
        raise RuntimeError("export_stacks needs with_stack=True call stacks, which disttorch does not record")


def tensorboard_trace_handler(dir_name, worker_name=None, use_gzip=False):
    """on_trace_ready that writes <dir_name>/<worker>.<time>.pt.trace.json[.gz], as TensorBoard's profiler
    plugin expects."""
    def handler(prof):
        os.makedirs(dir_name, exist_ok=True)
        worker = worker_name or f"{socket.gethostname()}_{os.getpid()}"
        filename = f"{worker}.{time.time_ns()}.pt.trace.json" + (".gz" if use_gzip else "")
        prof.export_chrome_trace(os.path.join(dir_name, filename))
    return handler


class record_function(contextlib.ContextDecorator):
    """A named range in the profile (as a `with` block or a decorator); free when nothing records."""

    def __init__(self, name, args=None):
        self.name = name
        self.args = args
        self._opened = []

    def __enter__(self):
        recorder = events.current_recorder()
        self._opened.append((recorder, recorder.open(self.name, "user_annotation") if recorder else None))
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        recorder, event = self._opened.pop()
        if event is not None:
            recorder.close(event)
        return False
