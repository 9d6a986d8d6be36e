"""How the nodes of a job agree on each attempt, and the single-node case where there is nobody to ask.

Every coordinator offers the same steps to the Agent: rendezvous() once, then per attempt
begin_round() -> (wait() while the workers run, announce_halt() when they fail) -> finish_round().
"""

import enum
import re
import time
from dataclasses import dataclass, field
from typing import Protocol

from disttorch.launcher.config import LaunchSpec, RoundPlan, new_secret
from disttorch.launcher.ports import ensure_port_free, free_port
from disttorch.launcher.workers import Failure


class NodeOutcome(str, enum.Enum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"  # one of its own workers failed
    STOPPED = "STOPPED"  # stopped because another node asked
    INTERRUPTED = "INTERRUPTED"  # its launcher got SIGINT/SIGTERM/SIGHUP
    LOST = "LOST"  # its launcher vanished


@dataclass
class RoundResult:
    node_rank: int
    outcome: NodeOutcome
    failures: list[Failure] = field(default_factory=list)
    reason: str = ""
    positions: list[list] = field(default_factory=list)  # [rank, where it was] from the flight records

    def to_json(self) -> dict:
        return {
            "node_rank": self.node_rank,
            "outcome": self.outcome.value,
            "failures": [failure.to_json() for failure in self.failures],
            "reason": self.reason,
            "positions": self.positions,
        }

    @classmethod
    def from_json(cls, data: dict) -> "RoundResult":
        return cls(
            data["node_rank"],
            NodeOutcome(data["outcome"]),
            [Failure.from_json(failure) for failure in data["failures"]],
            data["reason"],
            data.get("positions", []),
        )


@dataclass
class Verdict:
    """What every node does after an attempt. `failures` lists the root cause first."""

    restart: bool
    failed: bool
    failures: list[Failure]
    reason: str
    interrupted: bool = False  # a launcher's SIGINT/SIGTERM/SIGHUP ended the job, not a failure before it
    positions: list[list] = field(default_factory=list)  # [rank, where it was], every node's, by rank

    def to_json(self) -> dict:
        return {
            "restart": self.restart,
            "failed": self.failed,
            "failures": [failure.to_json() for failure in self.failures],
            "reason": self.reason,
            "interrupted": self.interrupted,
            "positions": self.positions,
        }

    @classmethod
    def from_json(cls, data: dict) -> "Verdict":
        return cls(data["restart"], data["failed"], [Failure.from_json(f) for f in data["failures"]], data["reason"],
                   data.get("interrupted", False), data.get("positions", []))


_NAMED_RANK = re.compile(r"\brank (\d+)\b")


def decide(results: list[RoundResult], first_halt_node: int | None, restart_count: int, max_restarts: int) -> Verdict:
    # The node that raised the alarm first holds the root cause; later failures elsewhere are usually
    # its consequences (peers losing their connection), whatever the clocks of the hosts say.
    failures = _root_cause_first(sorted(
        (failure for result in results for failure in result.failures),
        key=lambda failure: (failure.node_rank != first_halt_node, failure.timestamp),
    ))
    positions = sorted((position for result in results for position in result.positions), key=lambda pair: pair[0])
    interrupted_by = [result.reason for result in results if result.outcome is NodeOutcome.INTERRUPTED]
    if interrupted_by:
        return Verdict(restart=False, failed=True, failures=failures, reason="; ".join(interrupted_by),
                       interrupted=True, positions=positions)
    if all(result.outcome is NodeOutcome.SUCCEEDED for result in results):
        return Verdict(restart=False, failed=False, failures=[], reason="")
    failed = sum(failure.exit_code != 0 for failure in failures)
    reason = f"{failed} worker(s) failed" if failures else "the worker group was stopped"
    if failures and failures[0].exit_code == 0:
        reason = f"rank {failures[0].rank} exited (code 0) while the others still needed it; {reason}"
    # A lost node is a failure like any other: with restarts left, the nodes that remain rendezvous
    # again (the lost one may come back) and restart, as torchrun's agents do.
    lost = [result.reason for result in results if result.outcome is NodeOutcome.LOST]
    if lost:
        reason = "; ".join(lost)
    return Verdict(restart=restart_count < max_restarts, failed=True, failures=failures, reason=reason,
                   positions=positions)


def _root_cause_first(seen: list[Failure]) -> list[Failure]:
    """The failures, first one first, unless that one's error names a rank that had exited 0 on its own:
    then that rank left too early (a skipped collective, a `return` in the wrong place) and caused it.
    Other ranks that exited 0 are no failures and are left out."""
    failures = [failure for failure in seen if failure.exit_code != 0]
    exited_cleanly = {failure.rank: failure for failure in seen if failure.exit_code == 0}
    if not failures or not exited_cleanly:
        return failures
    error_line = next((line for line in reversed(failures[0].stderr_tail) if line.strip()), "")
    named = [int(rank) for rank in _NAMED_RANK.findall(error_line)]
    culprits = [exited_cleanly[rank] for rank in named if rank in exited_cleanly]
    return culprits[:1] + failures


class Coordinator(Protocol):
    def rendezvous(self) -> None:
        """Waits until every node is there (or raises a LaunchError naming who is missing)."""

    def begin_round(self, restart_count: int) -> RoundPlan:
        """This node's plan for the next attempt; every node gets it at the same time."""

    def wait(self, timeout: float) -> str | None:
        """Sleeps up to `timeout` while the workers run; returns a reason when the job must stop."""

    def announce_halt(self, reason: str) -> None:
        """A worker here failed (or the launcher was interrupted): every node must stop."""

    def finish_round(self, result: RoundResult, restart_count: int) -> Verdict:
        """Reports this node's result and returns what all nodes do next."""

    def close(self) -> None: ...


class LocalCoordinator:
    """nnodes == 1: the workers' store port is --master-port if given, else a free one per attempt."""

    def __init__(self, spec: LaunchSpec):
        self.spec = spec
        self.secret = spec.user_secret or new_secret()

    def rendezvous(self) -> None:
        if self.spec.master_port is not None:
            ensure_port_free(self.spec.master_addr, self.spec.master_port, "workers' store")

    def begin_round(self, restart_count: int) -> RoundPlan:
        if self.spec.master_port is None:
            port = free_port()
        else:
            port = self.spec.master_port
            if restart_count:
                ensure_port_free(self.spec.master_addr, port, "workers' store")
        return RoundPlan(restart_count, self.spec.nproc, 0, port, self.secret, self.spec.master_addr)

    def wait(self, timeout: float) -> str | None:
        time.sleep(timeout)
        return None

    def announce_halt(self, reason: str) -> None:
        """Nobody else to tell on a single node."""

    def finish_round(self, result: RoundResult, restart_count: int) -> Verdict:
        return decide([result], self.spec.node_rank, restart_count, self.spec.max_restarts)

    def close(self) -> None:
        """Nothing to release on a single node."""
