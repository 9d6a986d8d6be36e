"""The opt-in `torch` -> disttorch alias: python -m disttorch.as_torch and disttorch-launch --as-torch."""
import subprocess
import sys
import textwrap

import pytest

TIMEOUT_S = 120


def _run(args, cwd, **kwargs):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S,
                          **kwargs)


def _write(path, source):
    path.write_text(textwrap.dedent(source))
    return path


def test_script_runs_as_main_with_its_argv_and_torch_names_resolve_to_disttorch(tmp_path):
    script = _write(tmp_path / "train.py", """
        import os, sys
        import torch
        import torch.nn.functional as F
        import torchvision
        from torchvision import transforms
        import disttorch
        assert __name__ == "__main__", __name__
        assert sys.argv == ["train.py", "--epochs", "3"], sys.argv
        assert sys.path[0] == os.path.dirname(os.path.abspath(__file__))
        assert torch is disttorch and F is disttorch.nn.functional
        assert torchvision is disttorch.vision and transforms is disttorch.vision.transforms
        assert torch.nn.Linear is disttorch.nn.Linear
        assert disttorch.nn.__spec__.name == "disttorch.nn"
        print("ok")
    """)
    result = _run(["-m", "disttorch.as_torch", script.name, "--epochs", "3"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_missing_submodule_names_the_torch_and_the_disttorch_module(tmp_path):
    script = _write(tmp_path / "fx.py", """
        try:
            import torch.fx
        except ModuleNotFoundError as error:
            print(error.name, "|", error)
    """)
    result = _run(["-m", "disttorch.as_torch", script.name], tmp_path)
    assert result.returncode == 0, result.stderr
    name, message = result.stdout.strip().split(" | ")
    assert name == "torch.fx"
    assert "'torch.fx'" in message and "disttorch.fx" in message


def test_script_errors_keep_their_exit_status(tmp_path):
    script = _write(tmp_path / "fails.py", """
        import sys
        import torch
        sys.exit(7)
    """)
    assert _run(["-m", "disttorch.as_torch", script.name], tmp_path).returncode == 7
    missing = _run(["-m", "disttorch.as_torch", "nope.py"], tmp_path)
    assert missing.returncode == 2 and "nope.py" in missing.stderr


def test_alias_is_never_on_by_default(tmp_path):
    probe = ("import sys, disttorch, disttorch.nn, disttorch.vision, disttorch.utils.data; "
             "from disttorch._torch_alias import TorchAliasFinder; "
             "print(any(isinstance(f, TorchAliasFinder) for f in sys.meta_path))")
    result = _run(["-c", probe], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_refuses_when_a_real_torch_is_already_imported(tmp_path):
    pytest.importorskip("torch")
    probe = ("import torch\n"
             "from disttorch import _torch_alias\n"
             "try:\n    _torch_alias.install()\nexcept RuntimeError as error:\n    print(error)\n")
    result = _run(["-c", probe], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "real 'torch'" in result.stdout and "already imported" in result.stdout


def test_spawned_children_get_the_alias(tmp_path):
    script = _write(tmp_path / "spawner.py", """
        import multiprocessing
        import torch

        def work(rank, queue):
            queue.put((rank, torch.__name__, torch.ones(3).sum().item()))

        if __name__ == "__main__":
            context = multiprocessing.get_context("spawn")
            queue = context.Queue()
            workers = [context.Process(target=work, args=(rank, queue)) for rank in range(2)]
            for worker in workers:
                worker.start()
            print(sorted(queue.get(timeout=60) for _ in workers))
            for worker in workers:
                worker.join()
            assert all(worker.exitcode == 0 for worker in workers)
    """)
    result = _run(["-m", "disttorch.as_torch", script.name], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[(0, 'disttorch', 3.0), (1, 'disttorch', 3.0)]"


def test_launcher_as_torch_runs_each_worker_under_the_alias(tmp_path):
    script = _write(tmp_path / "ddp.py", """
        import sys
        import torch
        import torch.distributed as dist
        dist.init_process_group("gloo")
        total = torch.ones(2) * (dist.get_rank() + 1)
        dist.all_reduce(total)
        print(__name__, sys.argv[1:], total.tolist())
        dist.destroy_process_group()
    """)
    result = _run(["-m", "disttorch.launcher", "--as-torch", "--nproc", "2", script.name, "--lr", "0.1"], tmp_path)
    assert result.returncode == 0, result.stderr
    for rank in range(2):
        assert f"[rank {rank}] __main__ ['--lr', '0.1'] [3.0, 3.0]" in result.stdout


def test_module_mode_runs_a_package_module_whose_spawned_children_get_the_alias(tmp_path):
    package = tmp_path / "trainer"
    package.mkdir()
    (package / "__init__.py").write_text("")
    _write(package / "helper.py", """
        import torch

        def total(rank):
            return (torch.ones(2) * rank).sum().item()
    """)
    _write(package / "train.py", """
        import sys
        import torch
        import torch.multiprocessing as mp
        from . import helper

        def work(rank, world_size):
            # One write per line: with PYTHONUNBUFFERED, print() sends the text and its newline in
            # two writes, so the two children's lines could interleave on the shared pipe.
            sys.stdout.write(f"child {rank}/{world_size} {torch.__name__} {helper.total(rank)}\\n")
            sys.stdout.flush()

        if __name__ == "__main__":
            print("argv", sys.argv[1:], flush=True)
            mp.spawn(work, args=(2,), nprocs=2, join=True)
    """)
    result = _run(["-m", "disttorch.as_torch", "-m", "trainer.train", "--x", "1"], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = sorted(result.stdout.strip().splitlines())
    assert lines == ["argv ['--x', '1']", "child 0/2 disttorch 0.0", "child 1/2 disttorch 2.0"]
    missing = _run(["-m", "disttorch.as_torch", "-m", "no_such_module"], tmp_path)
    assert missing.returncode == 2 and "no_such_module" in missing.stderr
