"""Automatic mixed precision as the AMP recipe writes it, on the CPU: autocast(device_type, dtype=bfloat16)
around the forward pass and GradScaler (disabled off CUDA) around backward and step."""
import torch
import torch.nn as nn

from numpy_init import init_parameters, normal

device = "cuda" if torch.cuda.is_available() else "cpu"
use_amp = True
net = init_parameters(nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 8)))
net = net.to(device)
opt = torch.optim.SGD(net.parameters(), lr=0.01)
scaler = torch.amp.GradScaler(device, enabled=use_amp and device == "cuda")
loss_fn = nn.MSELoss()
data = [normal((16, 32), seed=80 + i) for i in range(6)]
targets = [normal((16, 8), seed=90 + i) for i in range(6)]

for epoch in range(3):
    for input, target in zip(data, targets):
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=use_amp):
            output = net(input)
            assert output.dtype == torch.bfloat16, output.dtype
            loss = loss_fn(output, target)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm=1.0)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)

checkpoint = {"model": net.state_dict(), "optimizer": opt.state_dict(), "scaler": scaler.state_dict()}
net.load_state_dict(checkpoint["model"])
opt.load_state_dict(checkpoint["optimizer"])
scaler.load_state_dict(checkpoint["scaler"])
with torch.no_grad():
    final = sum(loss_fn(net(i), t).item() for i, t in zip(data, targets)) / len(data)
print(f"final_loss={final:.6f}")
