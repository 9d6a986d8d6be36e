"""`disttorch-launch`: the command line (flag names follow torchrun's where they overlap)."""

import difflib
import os
import subprocess
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from disttorch.launcher.agent import Agent, exit_status_for
from disttorch.launcher.cluster import apply_cluster_placement
from disttorch.launcher.config import (DEFAULT_MULTI_NODE_PORT, LaunchSpec, parse_nnodes, resolve_nproc,
                                       user_secret_from_env)
from disttorch.launcher.coordination import LocalCoordinator
from disttorch.launcher.errors import Interrupted, LaunchError
from disttorch.launcher.output import log
from disttorch.launcher.rendezvous import MasterCoordinator, NodeCoordinator
from disttorch.launcher.signals import StopSignals
from disttorch.launcher.streams import OutputRouting, looks_like_streams, parse_streams


def _parse_nnodes(ctx, param, value: str) -> tuple[int, int]:
    try:
        return parse_nnodes(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def _parse_nproc(ctx, param, value: str) -> int:
    try:
        return resolve_nproc(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def _parse_streams(ctx, param, value: str | None):
    if value is None:
        return None
    try:
        return parse_streams(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


class _LauncherCommand(click.Command):
    """Reads the launcher's own options up to the script itself: an unknown option there is a mistyped
    flag, never the script, and `--tee` takes torchrun's optional value (`--tee 3`) or none (`--tee`)."""

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, self._launcher_options_checked(ctx, list(args)))

    def _launcher_options_checked(self, ctx, args):
        options = {name: param for param in self.get_params(ctx) if isinstance(param, click.Option)
                   for name in param.opts + param.secondary_opts}
        checked, index = [], 0
        while index < len(args) and args[index].startswith("-") and args[index] != "-":
            token = args[index]
            if token == "--":
                break
            name = ctx.token_normalize_func(token.split("=", 1)[0])
            if name not in options:
                matches = difflib.get_close_matches(name, [option for option in options if option.startswith("--")],
                                                    n=1, cutoff=0.6)
                raise click.NoSuchOption(token.split("=", 1)[0], possibilities=matches, ctx=ctx)
            if name == "--tee" and "=" not in token:
                given = index + 1 < len(args) and looks_like_streams(args[index + 1])
                checked.append(f"--tee={args[index + 1] if given else '3'}")
                index += 2 if given else 1
                continue
            takes_value = not options[name].is_flag and "=" not in token
            checked.extend(args[index:index + 1 + takes_value])
            index += 1 + takes_value
        return checked + args[index:]


@click.command(
    cls=_LauncherCommand,
    context_settings={
        # Everything after the script belongs to the script, `--epochs 3` included.
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
        "help_option_names": ["-h", "--help"],
        # torchrun also accepts --nproc_per_node, --master_addr, ...
        "token_normalize_func": lambda name: name.replace("_", "-"),
        "show_default": True,
    },
)
@click.option("--nproc", "--nproc-per-node", "nproc", default="1", metavar="N|auto", callback=_parse_nproc,
              help="Workers on this node; auto: one per GPU, else one per CPU core (also: gpu, cpu).")
@click.option("--nnodes", default="1", metavar="N|MIN:MAX", callback=_parse_nnodes,
              help="Number of nodes (one launcher each). MIN:MAX is elastic: a job that loses nodes restarts "
                   "on those left while at least MIN remain (needs --max-restarts); a node that comes back is "
                   "admitted at the next restart.")
@click.option("--node-rank", type=click.IntRange(min=0), default=0, help="This node's rank, 0..nnodes-1.")
@click.option("--master-addr", default="127.0.0.1", help="Address of node 0, reachable from every node.")
@click.option("--master-port", type=click.IntRange(1, 65535), default=None,
              help=f"Single node: the workers' store port (default: a free one). Multi-node: the launchers' "
                   f"rendezvous port on node 0 (default {DEFAULT_MULTI_NODE_PORT}).")
@click.option("--max-restarts", type=click.IntRange(min=0), default=0,
              help="Restart the whole worker group up to this many times after a failure.")
@click.option("--log-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write rank_N.stdout.log / rank_N.stderr.log here instead of the console.")
@click.option("--redirects", metavar="0-3|R:S,...", default=None, callback=_parse_streams,
              help="With --log-dir, torchrun's form: only these streams go to the files (1 stdout, 2 stderr, "
                   "3 both; per local rank as 0:3,1:2), the others to the console.")
@click.option("--tee", metavar="[0-3|R:S,...]", default=None, callback=_parse_streams,
              help="With --log-dir: these streams go to the files and the console; alone it means 3 (both).")
@click.option("--monitor-interval", type=click.FloatRange(min=0.01), default=0.1,
              help="Seconds between checks of the workers.")
@click.option("--rdzv-timeout", type=click.FloatRange(min=0, min_open=True), default=300.0,
              help="Seconds to wait for all nodes to join.")
@click.option("--grace-period", type=click.FloatRange(min=0), default=10.0, envvar="DISTTORCH_GRACE_PERIOD",
              help="Seconds between SIGTERM and SIGKILL when stopping workers (env DISTTORCH_GRACE_PERIOD).")
@click.option("-m", "--module", "run_module", is_flag=True, help="Run SCRIPT as a module, like `python -m`.")
@click.option("--as-torch", is_flag=True,
              help="Run an unmodified PyTorch script: `import torch`/`torchvision` resolve to disttorch in the "
                   "workers (python -m disttorch.as_torch).")
@click.argument("script")
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def main(ctx, nproc, nnodes, node_rank, master_addr, master_port, max_restarts, log_dir, redirects, tee,
         monitor_interval, rdzv_timeout, grace_period, run_module, as_torch, script, script_args):
    """Start NPROC copies of SCRIPT (a Python file, or a module with -m) as the ranks of one job.

    \b
      disttorch-launch --nproc 4 train.py --epochs 3
      disttorch-launch --nnodes 2 --node-rank 0 --nproc 2 --master-addr 10.0.0.1 train.py
      disttorch-launch --as-torch --nproc 2 torch_train.py
    """
    min_nodes, nnodes = nnodes
    nnodes, node_rank, master_addr, master_port = apply_cluster_placement(ctx, nnodes, node_rank, master_addr,
                                                                          master_port)
    if ctx.get_parameter_source("nnodes") is not ParameterSource.COMMANDLINE:
        min_nodes = nnodes  # placed by srun/mpirun: a fixed node count
    if node_rank >= nnodes:
        raise click.UsageError(f"--node-rank {node_rank} is out of range for --nnodes {nnodes}; use 0..{nnodes - 1}")
    for flag, given in (("--tee", tee), ("--redirects", redirects)):
        if given is not None and log_dir is None:
            raise click.UsageError(f"{flag} sends output to files; give the files a --log-dir")
    _check_entrypoint(script, run_module)
    if log_dir is not None:
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise LaunchError(f"cannot create --log-dir {log_dir}: {error.strerror}") from None
    try:
        user_secret = user_secret_from_env()
    except (OSError, ValueError) as error:
        raise LaunchError(f"cannot read the job secret: {error}") from None
    spec = LaunchSpec(
        nproc=nproc,
        nnodes=nnodes,
        min_nodes=min_nodes,
        node_rank=node_rank,
        master_addr=master_addr,
        master_port=master_port if master_port is not None or nnodes == 1 else DEFAULT_MULTI_NODE_PORT,
        max_restarts=max_restarts,
        log_dir=log_dir,
        output=OutputRouting(log_dir is not None, redirects, tee),
        monitor_interval=monitor_interval,
        rdzv_timeout=rdzv_timeout,
        grace_period=grace_period,
        command=_worker_command(script, script_args, run_module, as_torch),
        user_secret=user_secret,
    )
    ctx.exit(launch(spec))


def launch(spec: LaunchSpec) -> int:
    signals = StopSignals()
    signals.install()
    if not spec.multi_node:
        coordinator = LocalCoordinator(spec)
    elif spec.node_rank == 0:
        coordinator = MasterCoordinator(spec, signals)
    else:
        coordinator = NodeCoordinator(spec, signals)
    try:
        return Agent(spec, coordinator, signals).run()
    except Interrupted as interrupted:
        log(f"interrupted by {interrupted.name} before the workers started")
        return exit_status_for(interrupted.signum)
    finally:
        coordinator.close()
        signals.ignore_from_now()


def _worker_command(script, script_args, run_module, as_torch):
    entry = ("-m", script) if run_module else (script,)
    if as_torch:
        entry = ("-m", "disttorch.as_torch") + entry
    return entry + tuple(script_args)


def _check_entrypoint(script: str, run_module: bool) -> None:
    """Fail before any worker starts (and on every node before the rendezvous) when there is nothing to run."""
    if not run_module:
        if not Path(script).is_file():
            raise LaunchError(f"script {script!r} does not exist (looked in {os.getcwd()}); no workers were started")
        return
    # Asked of the workers' interpreter in the workers' directory, since the launcher's own sys.path differs.
    probe = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec(sys.argv[1]) else 3)"
    found = subprocess.run([sys.executable, "-c", probe, script], capture_output=True)
    if found.returncode != 0:
        raise LaunchError(f"module {script!r} cannot be found by {sys.executable} in {os.getcwd()}; "
                          f"no workers were started")
