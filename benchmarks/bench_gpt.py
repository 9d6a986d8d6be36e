"""A small GPT training step, disttorch against PyTorch CPU, both on one thread.

The nanoGPT/minGPT shape: 4 pre-norm blocks (LayerNorm, causal self-attention through
F.scaled_dot_product_attention, LayerNorm, Linear-GELU-Linear MLP), 4 heads, width 128, context 64,
character vocabulary of 65 with the output head tied to the token embedding, batch 12, cross-entropy,
AdamW. The same model code builds both libraries' models; disttorch starts from torch's weights.

(a) training step: zero_grad + forward + loss + backward + AdamW step;
(b) forward only: the same forward and loss under no_grad.
Both timed in alternating rounds in this process, in wall time, or with --clock cpu in this thread's CPU time
(steadier on a loaded machine: time spent waiting for a core is left out). Peak RSS is measured in two fresh subprocesses, one
per library (each imports only its own library), running a few training steps. peak_rss_ratio compares
the peak growth of RSS over those steps (activations, gradients, optimizer state: what training itself
allocates); the whole-process peaks, dominated by torch's much larger import, are printed above it.

Last line: `gpt: step_ratio=R disttorch_ms=D torch_ms=T peak_rss_ratio=M`.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # shared helpers sit beside this file
from _timing import compare, compare_seconds  # noqa: E402  (sets one BLAS thread before numpy loads)

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

VOCAB, CONTEXT, WIDTH, HEADS, LAYERS, BATCH = 65, 64, 128, 4, 4, 12


def gpt(lib):
    """The model class written once against `lib` (torch or disttorch)."""
    nn, F = lib.nn, lib.nn.functional

    class CausalSelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(WIDTH, 3 * WIDTH)
            self.c_proj = nn.Linear(WIDTH, WIDTH)

        def forward(self, x):
            batch, time, channels = x.shape
            q, k, v = self.c_attn(x).split(WIDTH, dim=2)
            q = q.view(batch, time, HEADS, channels // HEADS).transpose(1, 2)
            k = k.view(batch, time, HEADS, channels // HEADS).transpose(1, 2)
            v = v.view(batch, time, HEADS, channels // HEADS).transpose(1, 2)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            y = y.transpose(1, 2).contiguous().view(batch, time, channels)
            return self.c_proj(y)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(WIDTH)
            self.attn = CausalSelfAttention()
            self.ln_2 = nn.LayerNorm(WIDTH)
            self.mlp = nn.Sequential(nn.Linear(WIDTH, 4 * WIDTH), nn.GELU(), nn.Linear(4 * WIDTH, WIDTH))

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(VOCAB, WIDTH)
            self.wpe = nn.Embedding(CONTEXT, WIDTH)
            self.blocks = nn.ModuleList([Block() for _ in range(LAYERS)])
            self.ln_f = nn.LayerNorm(WIDTH)
            self.lm_head = nn.Linear(WIDTH, VOCAB, bias=False)
            self.lm_head.weight = self.wte.weight
            self.register_buffer("positions", lib.arange(CONTEXT))
            for name, param in self.named_parameters():
                if name.endswith("weight") and param.dim() == 2:
                    nn.init.normal_(param, mean=0.0, std=0.02)

        def forward(self, idx, targets):
            x = self.wte(idx) + self.wpe(self.positions[: idx.shape[1]])
            for block in self.blocks:
                x = block(x)
            logits = self.lm_head(self.ln_f(x))
            return F.cross_entropy(logits.view(-1, VOCAB), targets.view(-1))

    return GPT()


def batch():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, VOCAB, (BATCH, CONTEXT + 1))
    return tokens[:, :-1].copy(), tokens[:, 1:].copy()


def runner(lib, model, inputs, targets):
    """(train_step, forward_only) closures over one model and one AdamW."""
    optimizer = lib.optim.AdamW(model.parameters(), lr=1e-3)

    def train_step():
        optimizer.zero_grad()
        loss = model(inputs, targets)
        loss.backward()
        optimizer.step()
        return loss.detach()

    def forward_only():
        with lib.no_grad():
            return model(inputs, targets)

    return train_step, forward_only


def _status_kib(field):
    """VmRSS (now) or VmHWM (peak) of this process; getrusage's maxrss would carry the parent's peak
    across exec."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure_memory(lib_name, steps):
    """Run in a subprocess: RSS before the first step, and the process's peak after `steps` steps."""
    lib = importlib.import_module(lib_name)
    if lib_name == "torch":
        lib.set_num_threads(1)
    lib.manual_seed(0)
    inputs, targets = (lib.from_numpy(a) for a in batch())
    train_step, _ = runner(lib, gpt(lib), inputs, targets)
    before = _status_kib("VmRSS")
    for _ in range(steps):
        train_step()
    peak = _status_kib("VmHWM")
    print(json.dumps({"before_kib": before, "peak_kib": peak}))


def _memory_of(lib_name, steps):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--memory-of", lib_name, "--steps", str(steps)],
                         check=True, capture_output=True, text=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or this thread's CPU time (steadier on a machine shared with other work)")
    parser.add_argument("--memory-of", choices=("torch", "disttorch"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_of:
        measure_memory(args.memory_of, args.steps)
        return

    import torch
    import disttorch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    theirs = gpt(torch)
    ours = gpt(disttorch)
    ours.load_state_dict({k: disttorch.from_numpy(v.detach().numpy().copy()) for k, v in theirs.state_dict().items()})
    inputs, targets = batch()
    ref_step, ref_forward = runner(torch, theirs, torch.from_numpy(inputs), torch.from_numpy(targets))
    our_step, our_forward = runner(disttorch, ours, disttorch.from_numpy(inputs), disttorch.from_numpy(targets))
    first_ref, first_ours = ref_forward().item(), our_forward().item()
    if abs(first_ref - first_ours) > 1e-4 * max(1.0, abs(first_ref)):
        raise SystemExit(f"the two models disagree on the first loss: torch {first_ref}, disttorch {first_ours}")
    losses = [(our_step().item(), ref_step().item()) for _ in range(3)]
    if abs(losses[-1][0] - losses[-1][1]) > 1e-3 * max(1.0, abs(losses[-1][1])):
        raise SystemExit(f"the two models drift apart in training: losses (disttorch, torch) {losses}")
    print(f"gpt {LAYERS}x{HEADS}h w{WIDTH} ctx{CONTEXT} b{BATCH}: first loss {first_ours:.5f} vs {first_ref:.5f}, "
          f"after 3 AdamW steps {losses[-1][0]:.5f} vs {losses[-1][1]:.5f}")

    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    print(f"clock: {args.clock} time")
    forward_ratio = compare("forward only (no_grad)", our_forward, ref_forward, args.steps, args.rounds, clock)
    step_ratio, ours_best, ref_best = compare_seconds("train step (fwd+bwd+AdamW)", our_step, ref_step, args.steps,
                                                      args.rounds, clock)

    mem_ours, mem_ref = _memory_of("disttorch", args.steps), _memory_of("torch", args.steps)
    growth_ours = mem_ours["peak_kib"] - mem_ours["before_kib"]
    growth_ref = mem_ref["peak_kib"] - mem_ref["before_kib"]
    peak_ratio = growth_ours / max(growth_ref, 1)
    print(f"peak RSS of the process: disttorch {mem_ours['peak_kib'] / 1024:.1f} MiB  torch "
          f"{mem_ref['peak_kib'] / 1024:.1f} MiB; peak growth over {args.steps} training steps: disttorch "
          f"{growth_ours / 1024:.1f} MiB  torch {growth_ref / 1024:.1f} MiB (ratio {peak_ratio:.2f})")
    print(f"gpt: forward_ratio={forward_ratio:.2f}")
    print(f"gpt: step_ratio={step_ratio:.2f} disttorch_ms={ours_best * 1e3:.1f} "
          f"torch_ms={ref_best * 1e3:.1f} peak_rss_ratio={peak_ratio:.2f}")


if __name__ == "__main__":
    main()
