"""The launcher's pure parts: --nproc resolution, exit descriptions, the summary table, restart decisions,
output routing."""

import signal

import pytest

from disttorch.launcher.config import parse_nnodes, resolve_nproc, usable_cpu_count, user_secret_from_env
from disttorch.launcher.coordination import NodeOutcome, RoundResult, Verdict, decide
from disttorch.launcher.ports import listen_interface, stays_on_this_machine
from disttorch.launcher.streams import STDERR, STDOUT, OutputRouting, parse_streams
from disttorch.launcher.summary import failure_summary
from disttorch.launcher.workers import Failure, describe_exit


def _failure(rank, node_rank=0, exit_code=1, timestamp=0.0, tail=("boom",)):
    return Failure(rank, rank, node_rank, "hostA", 1000 + rank, exit_code, list(tail), timestamp)


@pytest.mark.parametrize("visible, expected", [("0,1,2", 3), ("1", 1)])
def test_auto_nproc_counts_visible_gpus(monkeypatch, visible, expected):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert resolve_nproc("auto") == resolve_nproc("gpu") == expected


def test_auto_nproc_without_gpus_uses_cpu_cores(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert resolve_nproc("auto") == resolve_nproc("cpu") == usable_cpu_count()
    with pytest.raises(ValueError, match="found no GPU"):
        resolve_nproc("gpu")


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_bad_nproc(value):
    with pytest.raises(ValueError, match="--nproc"):
        resolve_nproc(value)


def test_secret_from_env_or_file(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    assert user_secret_from_env({"DISTTORCH_SECRET": "direct"}) == "direct"
    assert user_secret_from_env({"DISTTORCH_SECRET": "", "DISTTORCH_SECRET_FILE": str(secret_file)}) == "from-file"
    assert user_secret_from_env({"DISTTORCH_SECRET": ""}) is None
    secret_file.write_text("")
    with pytest.raises(ValueError, match="is empty"):
        user_secret_from_env({"DISTTORCH_SECRET_FILE": str(secret_file)})


@pytest.mark.parametrize("code, text", [
    (3, "exit code 3"),
    (-signal.SIGKILL, "SIGKILL (likely out of memory)"),
    (-signal.SIGSEGV, "SIGSEGV (segmentation fault)"),
    (-signal.SIGTERM, "SIGTERM"),
])
def test_describe_exit(code, text):
    assert describe_exit(code) == text


def test_summary_marks_the_root_cause_and_shows_stderr():
    summary = failure_summary([_failure(2, node_rank=1, exit_code=-9), _failure(0, tail=())], "2 worker(s) failed",
                              multi_node=True)
    lines = summary.splitlines()
    header = next(line for line in lines if line.startswith("rank"))
    assert header.split() == ["rank", "node", "host", "pid", "exit"]
    assert "2     1     hostA  1002  SIGKILL (likely out of memory)  <- root cause" in lines
    assert "rank 2 (root cause): last lines of stderr:" in lines
    assert lines[lines.index("rank 0: last lines of stderr:") + 1] == "    (nothing written to stderr)"


def test_decide_restarts_until_the_budget_is_spent():
    failed = [RoundResult(0, NodeOutcome.FAILED, [_failure(0)]), RoundResult(1, NodeOutcome.STOPPED)]
    assert decide(failed, 0, restart_count=0, max_restarts=1).restart
    final = decide(failed, 0, restart_count=1, max_restarts=1)
    assert not final.restart and final.failed


def test_decide_never_restarts_after_an_interrupt():
    results = [RoundResult(0, NodeOutcome.STOPPED), RoundResult(1, NodeOutcome.INTERRUPTED, reason="why")]
    verdict = decide(results, 1, restart_count=0, max_restarts=5)
    assert not verdict.restart and verdict.failed and verdict.reason == "why"


def test_a_lost_node_restarts_the_job_while_restarts_remain():
    """The nodes left rendezvous again (elastic --nnodes MIN:MAX, or waiting for the node to come back)."""
    results = [RoundResult(0, NodeOutcome.STOPPED, [_failure(0)]), RoundResult(2, NodeOutcome.LOST, reason="lost node 2")]
    verdict = decide(results, 2, restart_count=0, max_restarts=1)
    assert verdict.restart and verdict.failed and verdict.reason == "lost node 2"
    assert not decide(results, 2, restart_count=1, max_restarts=1).restart


@pytest.mark.parametrize("value, expected", [("1", (1, 1)), ("3", (3, 3)), ("2:3", (2, 3)), ("1:1", (1, 1))])
def test_parse_nnodes(value, expected):
    assert parse_nnodes(value) == expected


@pytest.mark.parametrize("value", ["0", "3:2", "a", "1:2:3", "2:", "0:2"])
def test_bad_nnodes(value):
    with pytest.raises(ValueError, match="--nnodes expects N or MIN:MAX"):
        parse_nnodes(value)


def test_only_an_interrupt_makes_the_verdict_an_interruption():
    """A lost node's failure stays a failure (exit 1) even when a signal arrives while stopping."""
    for outcome, interrupted in ((NodeOutcome.INTERRUPTED, True), (NodeOutcome.LOST, False),
                                 (NodeOutcome.FAILED, False)):
        results = [RoundResult(0, NodeOutcome.STOPPED), RoundResult(1, outcome, reason="why")]
        verdict = decide(results, 1, restart_count=0, max_restarts=0)
        assert verdict.interrupted is interrupted
        assert Verdict.from_json(verdict.to_json()) == verdict


def test_root_cause_comes_from_the_node_that_raised_the_alarm():
    # Node 1's clock runs behind, yet its failure came first: node 0's worker died of the consequences.
    results = [RoundResult(0, NodeOutcome.STOPPED, [_failure(0, timestamp=5.0)]),
               RoundResult(1, NodeOutcome.FAILED, [_failure(2, node_rank=1, timestamp=9.0)])]
    verdict = decide(results, first_halt_node=1, restart_count=0, max_restarts=0)
    assert [failure.rank for failure in verdict.failures] == [2, 0]


def test_decide_success_needs_every_node():
    assert not decide([RoundResult(0, NodeOutcome.SUCCEEDED)] * 2, None, 0, 0).failed


def test_a_rank_that_exited_0_is_the_root_cause_only_when_the_failure_names_it():
    left = "RankFailure: rank 3 left the job before sending its part of all_reduce #9; rank 0 cannot finish it"
    clean_exit = _failure(3, node_rank=1, exit_code=0, timestamp=1.0, tail=())
    other_clean_exit = _failure(2, node_rank=1, exit_code=0, timestamp=1.0, tail=())
    named = [RoundResult(0, NodeOutcome.FAILED, [_failure(0, timestamp=2.0, tail=("Traceback", left))]),
             RoundResult(1, NodeOutcome.STOPPED, [other_clean_exit, clean_exit])]
    verdict = decide(named, 0, restart_count=0, max_restarts=0)
    assert [(failure.rank, failure.exit_code) for failure in verdict.failures] == [(3, 0), (0, 1)]
    assert verdict.reason == "rank 3 exited (code 0) while the others still needed it; 1 worker(s) failed"
    assert "exit code 0 before the others  <- root cause" in failure_summary(verdict.failures, verdict.reason, True)

    unrelated = [RoundResult(0, NodeOutcome.FAILED, [_failure(0, timestamp=2.0, tail=("OSError: disk full",))]),
                 RoundResult(1, NodeOutcome.STOPPED, [clean_exit])]
    verdict = decide(unrelated, 0, restart_count=0, max_restarts=0)
    assert [failure.rank for failure in verdict.failures] == [0]
    assert verdict.reason == "1 worker(s) failed"


@pytest.mark.parametrize("value, parsed", [("0", {None: 0}), ("3", {None: 3}), ("0:1,1:2", {0: 1, 1: 2}),
                                           (" 2 ", {None: 2})])
def test_stream_values_follow_torchrun(value, parsed):
    assert parse_streams(value) == parsed


@pytest.mark.parametrize("value", ["4", "", "both", "0:4", "0:1,", "-1", "1:"])
def test_bad_stream_values_name_the_forms(value):
    with pytest.raises(ValueError, match="1 \\(stdout\\), 2 \\(stderr\\), 3 \\(both\\)"):
        parse_streams(value)


def test_output_routing():
    assert OutputRouting(False).destinations(0, STDOUT) == (False, True)
    assert OutputRouting(True).destinations(0, STDERR) == (True, False)  # --log-dir alone: files only
    routing = OutputRouting(True, redirects={None: STDOUT}, tee={1: STDOUT | STDERR})
    assert routing.destinations(0, STDOUT) == (True, False)
    assert routing.destinations(0, STDERR) == (False, True)
    assert routing.destinations(1, STDOUT) == (True, True)
    assert routing.destinations(1, STDERR) == (True, True)


@pytest.mark.parametrize("addr, interface", [
    ("127.0.0.1", "127.0.0.1"), ("127.0.0.2", "127.0.0.2"), ("localhost", "127.0.0.1"),
    ("203.0.113.7", None),  # not this machine's (NAT): every interface
    ("node-0.cluster", None),  # a name may resolve elsewhere to another address: every interface
])
def test_node_0_listens_on_the_master_address_when_it_is_one_of_ours(addr, interface):
    assert listen_interface(addr) == interface


def test_only_loopback_addresses_keep_the_job_on_one_machine():
    assert stays_on_this_machine("127.0.0.1") and stays_on_this_machine("localhost")
    assert not stays_on_this_machine("10.0.0.1") and not stays_on_this_machine("node-0")
