"""Complete PyTorch-style programs (tests/programs/scripts/) run unchanged under `python -m disttorch.as_torch`
(a few through `disttorch-launch --as-torch --nproc 2`), and, where PyTorch is installed, the very same
file on PyTorch must print the same `final_loss=...` to the tolerance named for it below.

The programs compared with PyTorch build their data and initial parameters from numpy
(scripts/numpy_init.py), since the two frameworks' random streams differ; with that, most agree to
float32 rounding (EXACT). All runs are queued on a pool of one thread per core when the module's first test
asks, so the folder costs the programs' total run time divided by the cores.
"""
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts")
TIMEOUT_S = 170
# Float32 results of the same arithmetic in a different order (BLAS blocking, summation order).
EXACT = 2e-4
# float64 programs.
TIGHT = 1e-6
# Ill-conditioned float32 training (quartic features, SGD) that grows rounding differences over its steps.
AMPLIFIED = 1e-2
# Dropout masks come from each framework's own generator, so the runs see different noise; the loss must
# still land in the same place.
OWN_RANDOMNESS = 5e-2


@dataclass(frozen=True)
class Program:
    rel_tolerance: float | None = EXACT  # None: run only, nothing to compare against (see the entry)
    launch_nproc: int = 0  # >0: run through the launcher with this many workers
    args: tuple = ()
    needs: tuple = ()  # optional packages the program imports


PROGRAMS = {
    "quickstart": Program(),
    "polynomial_autograd": Program(),
    "custom_function": Program(),
    "dynamic_net": Program(),
    "regression": Program(rel_tolerance=AMPLIFIED),
    "mnist_cnn": Program(rel_tolerance=OWN_RANDOMNESS),
    "ddp_spawn": Program(),
    "ddp_torchrun": Program(launch_nproc=2),
    "char_gpt": Program(),
    "vae": Program(),
    "dcgan": Program(),
    "time_sequence": Program(rel_tolerance=TIGHT),
    "word_lm": Program(),
    "names_classifier": Program(),
    "char_rnn_cells": Program(),
    "tensorboard_logging": Program(needs=("tensorboard",)),
    "profiling": Program(),
    "custom_dataset": Program(),
    "lr_schedulers": Program(),
    "checkpoint_resume": Program(),
    "amp_autocast": Program(),
    "transformer_classifier": Program(),
    "grad_accumulation": Program(),
    "ddp_checkpoint": Program(launch_nproc=2),
    "seq2seq_attention": Program(),
    # torchvision programs: PyTorch's side would need torchvision, and their data or initial weights come
    # from each framework's own generator (FakeData, torch.manual_seed), so they only have to run.
    "transfer_finetune": Program(rel_tolerance=None),
    "cifar_tutorial": Program(rel_tolerance=None, needs=("PIL",)),
    "fakedata_pipeline": Program(rel_tolerance=None),
}

# Not anchored to a line start: children of mp.spawn share one pipe and may interleave their lines.
_FINAL_LOSS = re.compile(r"final_loss=([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))")


def _command(program, framework):
    script = os.path.join(SCRIPTS, f"{program}.py")
    spec = PROGRAMS[program]
    if spec.launch_nproc:
        if framework == "disttorch":
            return [sys.executable, "-m", "disttorch.launcher", "--as-torch", "--nproc", str(spec.launch_nproc),
                    script, *spec.args]
        # --standalone binds its store to port 0 itself: a port probed here could be taken by another
        # program of this test before torchrun binds it.
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                str(spec.launch_nproc), script, *spec.args]
    if framework == "disttorch":
        return [sys.executable, "-m", "disttorch.as_torch", script, *spec.args]
    return [sys.executable, script, *spec.args]


def _run(program, framework, workdir):
    """Run in a directory of its own: programs write checkpoints, logs and traces into their cwd."""
    cwd = workdir / f"{program}-{framework}"
    cwd.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(_command(program, framework), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)


def _torch_installed():
    import importlib.util
    return importlib.util.find_spec("torch") is not None


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{(program, framework): Future of CompletedProcess}, all submitted up front."""
    workdir = tmp_path_factory.mktemp("programs")
    frameworks = ["disttorch"] + (["torch"] if _torch_installed() else [])
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        futures = {(program, framework): pool.submit(_run, program, framework, workdir)
                   for program in PROGRAMS for framework in frameworks}
        yield futures
        for future in futures.values():
            future.cancel()


# torch's gloo backend sometimes aborts in its own teardown on a busy machine (a C++ thread left
# joinable when the peer closed first: std::terminate after destroy_process_group). By then the
# reference has printed its result, which is all the comparison needs; our own runs get no such pass.
_GLOO_TEARDOWN_ABORT = "terminate called without an active exception"


def _reference_aborted_in_teardown(result, label):
    return (label.endswith("on torch") and result.returncode != 0 and _GLOO_TEARDOWN_ABORT in result.stderr
            and _FINAL_LOSS.search(result.stdout) is not None)


def _final_loss(result, label):
    assert result.returncode == 0 or _reference_aborted_in_teardown(result, label), (
        f"{label} exited {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    found = _FINAL_LOSS.findall(result.stdout)
    assert found, f"{label} printed no final_loss line:\n{result.stdout[-2000:]}"
    return float(found[-1])


@pytest.mark.parametrize("program", list(PROGRAMS))
def test_program_runs_under_as_torch_and_matches_torch(program, runs):
    spec = PROGRAMS[program]
    for package in spec.needs:
        pytest.importorskip(package)
    ours = _final_loss(runs[(program, "disttorch")].result(), f"{program} on disttorch")
    if spec.rel_tolerance is None or (program, "torch") not in runs:
        return
    reference = _final_loss(runs[(program, "torch")].result(), f"{program} on torch")
    assert ours == pytest.approx(reference, rel=spec.rel_tolerance), (
        f"{program}: final_loss {ours} on disttorch, {reference} on torch (rel tolerance {spec.rel_tolerance})")
