"""What the profiler records: timed events for ops, backward nodes and record_function ranges, and the
tables and traces made from them.

Recording hooks into op dispatch by swapping `Function.apply` (every forward op) and `Function._run`
(every backward node) for timed versions while a profiler records, and putting the originals back when
none does: with no profiler active, dispatch runs exactly the code it runs without this module.
"""
import os
import threading
import time

from ..core import autograd as _engine


class FunctionEvent:
    """One timed range on one thread: an op, a backward node or a record_function block."""

    __slots__ = ("name", "start_ns", "end_ns", "thread", "input_shapes", "child_ns", "kind")

    def __init__(self, name, start_ns, thread, input_shapes, kind):
        self.name = name
        self.start_ns = start_ns
        self.end_ns = start_ns
        self.thread = thread
        self.input_shapes = input_shapes
        self.child_ns = 0
        self.kind = kind

    @property
    def key(self):
        return self.name

    @property
    def cpu_time_total(self):
        return (self.end_ns - self.start_ns) / 1e3  # microseconds, as torch reports

    @property
    def self_cpu_time_total(self):
        return (self.end_ns - self.start_ns - self.child_ns) / 1e3

    @property
    def count(self):
        return 1

    def __repr__(self):
        return f"<FunctionEvent name={self.name} cpu_time={self.cpu_time_total:.3f}us thread={self.thread}>"


class FunctionEventAvg:
    """Events of one name (and input shapes, when grouped by them) summed together."""

    def __init__(self, key, input_shapes=None):
        self.key = key
        self.input_shapes = input_shapes
        self.count = 0
        self.cpu_time_total = 0.0
        self.self_cpu_time_total = 0.0
        self.cuda_time_total = 0.0
        self.self_cuda_time_total = 0.0
        self.device_time_total = 0.0
        self.self_device_time_total = 0.0
        self.cpu_memory_usage = 0
        self.self_cpu_memory_usage = 0

    def add(self, event):
        self.count += 1
        self.cpu_time_total += event.cpu_time_total
        self.self_cpu_time_total += event.self_cpu_time_total
        return self

    @property
    def cpu_time(self):
        return self.cpu_time_total / self.count if self.count else 0.0

    @property
    def self_cpu_time(self):
        return self.self_cpu_time_total / self.count if self.count else 0.0

    def __repr__(self):
        return (f"<FunctionEventAvg key={self.key} self_cpu_time={self.self_cpu_time_total:.3f}us "
                f"cpu_time={self.cpu_time_total:.3f}us count={self.count}>")


_SORT_KEYS = {"cpu_time", "cpu_time_total", "self_cpu_time_total", "count", "cuda_time_total",
              "self_cuda_time_total", "device_time_total", "self_device_time_total", "cpu_memory_usage",
              "self_cpu_memory_usage"}


def _format_time(microseconds):
    if microseconds >= 1e6:
        return f"{microseconds / 1e6:.3f}s"
    if microseconds >= 1e3:
        return f"{microseconds / 1e3:.3f}ms"
    return f"{microseconds:.3f}us"


class EventList(list):
    """A list of FunctionEvent or FunctionEventAvg with torch's table()/key_averages()/export_chrome_trace()."""

    def key_averages(self, group_by_input_shape=False):
        groups = {}
        for event in self:
            shapes = str(event.input_shapes) if group_by_input_shape else None
            key = (event.key, shapes)
            if key not in groups:
                groups[key] = FunctionEventAvg(event.key, shapes)
            groups[key].add(event)
        return EventList(groups.values())

    @property
    def self_cpu_time_total(self):
        return sum(event.self_cpu_time_total for event in self)

    def table(self, sort_by=None, row_limit=100, max_src_column_width=75, max_name_column_width=55,
              max_shapes_column_width=80, header=None, top_level_events_only=False):
        if sort_by is not None and sort_by not in _SORT_KEYS:
            raise AttributeError(f"unknown sort_by {sort_by!r}; use one of {sorted(_SORT_KEYS)}")
        rows = list(self)
        if sort_by is not None:
            rows.sort(key=lambda event: getattr(event, sort_by), reverse=True)
        if row_limit is not None and row_limit > 0:
            rows = rows[:row_limit]
        # rows grouped by input shape (key_averages(group_by_input_shape=True)) get a shapes column
        with_shapes = bool(rows) and isinstance(rows[0], FunctionEventAvg) and rows[0].input_shapes is not None
        total = self.self_cpu_time_total or 1.0
        name_width = min(max_name_column_width, max([len(event.key) for event in rows] + [4]) + 2)
        columns = ["Self CPU %", "Self CPU", "CPU total %", "CPU total", "CPU time avg", "# of Calls"]
        widths = [12] * len(columns)
        shapes_width = max_shapes_column_width if with_shapes else 0
        line = "-" * name_width + "  " + "  ".join("-" * width for width in widths)
        if with_shapes:
            line += "  " + "-" * shapes_width
        head = "Name".rjust(name_width) + "  " + "  ".join(c.rjust(w) for c, w in zip(columns, widths))
        if with_shapes:
            head += "  " + "Input Shapes".ljust(shapes_width)
        out = [header] if header else []
        out += [line, head.rstrip(), line]
        for event in rows:
            name = event.key if len(event.key) <= name_width - 2 else event.key[:name_width - 5] + "..."
            cpu_avg = event.cpu_time_total / event.count if event.count else 0.0
            cells = [f"{100 * event.self_cpu_time_total / total:.2f}%", _format_time(event.self_cpu_time_total),
                     f"{100 * event.cpu_time_total / total:.2f}%", _format_time(event.cpu_time_total),
                     _format_time(cpu_avg), str(event.count)]
            row = name.rjust(name_width) + "  " + "  ".join(c.rjust(w) for c, w in zip(cells, widths))
            if with_shapes:
                row += "  " + str(event.input_shapes)[:shapes_width].ljust(shapes_width)
            out.append(row.rstrip())
        out.append(line)
        out.append(f"Self CPU time total: {_format_time(self.self_cpu_time_total)}")
        return "\n".join(out) + "\n"

    def __str__(self):
        return self.table()


class Recorder:
    """The events of one recording window, appended from any thread."""

    def __init__(self, record_shapes):
        self.record_shapes = record_shapes
        self.events = []
        self.local = threading.local()
        self.origin_ns = time.perf_counter_ns()
        self.origin_wall_us = time.time_ns() / 1e3

    def open(self, name, kind, args=()):
        stack = getattr(self.local, "stack", None)
        if stack is None:
            stack = self.local.stack = []
        shapes = None
        if self.record_shapes:
            shapes = [list(arg.shape) if hasattr(arg, "shape") else [] for arg in args]
        event = FunctionEvent(name, time.perf_counter_ns(), threading.get_ident(), shapes, kind)
        stack.append(event)
        return event

    def close(self, event):
        event.end_ns = time.perf_counter_ns()
        stack = self.local.stack
        stack.pop()
        if stack:
            stack[-1].child_ns += event.end_ns - event.start_ns
        self.events.append(event)

    def chrome_trace(self):
        pid = os.getpid()
        trace = []
        for event in sorted(self.events, key=lambda e: e.start_ns):
            entry = {"ph": "X", "cat": event.kind, "name": event.name, "pid": pid, "tid": event.thread,
                     "ts": self.origin_wall_us + (event.start_ns - self.origin_ns) / 1e3,
                     "dur": (event.end_ns - event.start_ns) / 1e3, "args": {}}
            if event.input_shapes is not None:
                entry["args"]["Input Dims"] = event.input_shapes
            trace.append(entry)
        return {"schemaVersion": 1, "displayTimeUnit": "ms", "traceEvents": trace}


# The recorders now recording; dispatch is patched exactly while this list is non-empty.
_active = []
_plain_apply = _engine.Function.__dict__["apply"]
_plain_run = _engine.Function.__dict__["_run"]


def _profiled_apply(cls, *args):
    recorder = _active[-1] if _active else None
    if recorder is None:
        return _plain_apply.__func__(cls, *args)
    event = recorder.open("disttorch::" + cls.__name__, "cpu_op", args)
    try:
        return _plain_apply.__func__(cls, *args)
    finally:
        recorder.close(event)


def _profiled_run(node, grad, retain_graph):
    recorder = _active[-1] if _active else None
    if recorder is None:
        return _plain_run(node, grad, retain_graph)
    event = recorder.open(node.name(), "cpu_op", (grad,))
    try:
        return _plain_run(node, grad, retain_graph)
    finally:
        recorder.close(event)


def start_recording(recorder):
    if not _active:
        _engine.Function.apply = classmethod(_profiled_apply)
        _engine.Function._run = _profiled_run
    _active.append(recorder)


def stop_recording(recorder):
    if recorder in _active:
        _active.remove(recorder)
    if not _active:
        _engine.Function.apply = _plain_apply
        _engine.Function._run = _plain_run


def current_recorder():
    return _active[-1] if _active else None
