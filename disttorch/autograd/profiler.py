"""torch.autograd.profiler: the older spelling of torch.profiler, as scripts written before it still use."""
from .. import profiler as _profiler
from ..profiler import EventList, FunctionEvent, FunctionEventAvg, record_function  # noqa: F401


class profile(_profiler.profile):
    """`with torch.autograd.profiler.profile(enabled=True, record_shapes=...) as prof:`; the results are
    read from the object itself once the block ends (prof.key_averages(), prof.table(), ...)."""

    def __init__(self, enabled=True, *, use_cuda=False, use_device=None, record_shapes=False, with_flops=False,
                 profile_memory=False, with_stack=False, with_modules=False, use_kineto=False, use_cpu=True,
                 experimental_config=None, acc_events=False, custom_trace_id_callback=None):
        super().__init__(record_shapes=record_shapes, profile_memory=profile_memory, with_stack=with_stack,
                         with_flops=with_flops, with_modules=with_modules, use_cuda=use_cuda)
        self.enabled = enabled

    def start(self):
        if self.enabled:
            super().start()

    def table(self, sort_by=None, row_limit=100, header=None, **kwargs):
        return self.events().table(sort_by=sort_by, row_limit=row_limit, header=header, **kwargs)

    def total_average(self):
        total = FunctionEventAvg("Total")
        for event in self.events():
            total.add(event)
        return total

    @property
    def function_events(self):
        return self.events()

    @property
    def self_cpu_time_total(self):
        return self.events().self_cpu_time_total
