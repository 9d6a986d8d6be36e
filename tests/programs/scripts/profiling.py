"""The profiler recipe: profile a model's inference with record_function labels, print key_averages tables,
export a Chrome trace, then profile a few training steps on a schedule with a trace handler."""
import json
import os

import torch
import torch.nn as nn
from torch.profiler import ProfilerActivity, profile, record_function

from numpy_init import init_parameters, labels, normal

model = init_parameters(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)))
inputs = normal((4, 3, 16, 16), seed=41)
targets = labels(4, 5, seed=42)

model.eval()
with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
    with record_function("model_inference"):
        model(inputs)
print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=10))
print(prof.key_averages(group_by_input_shape=True).table(sort_by="cpu_time_total", row_limit=10))
names = {event.key for event in prof.key_averages()}
assert "model_inference" in names, names

prof.export_chrome_trace("trace.json")
with open("trace.json") as handle:
    trace = json.load(handle)
assert any(event["name"] == "model_inference" for event in trace["traceEvents"])

model.train()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
loss_fn = nn.CrossEntropyLoss()
with profile(activities=[ProfilerActivity.CPU],
             schedule=torch.profiler.schedule(wait=1, warmup=1, active=2, repeat=1),
             on_trace_ready=torch.profiler.tensorboard_trace_handler("./log/model"),
             record_shapes=True) as prof:
    for step in range(6):
        with record_function("train_step"):
            optimizer.zero_grad()
            loss = loss_fn(model(inputs), targets)
            loss.backward()
            optimizer.step()
        prof.step()
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=5))
traces = [name for name in os.listdir("./log/model") if name.endswith(".pt.trace.json")]
assert len(traces) == 1, traces
print(f"final_loss={loss.item():.6f}")
