"""The launcher's main loop on one node: rendezvous, start the workers, watch them, stop or restart."""

import signal

from disttorch.launcher.config import LaunchSpec, RoundPlan
from disttorch.launcher.coordination import Coordinator, NodeOutcome, RoundResult, Verdict
from disttorch.launcher.errors import Interrupted, LaunchError
from disttorch.launcher.output import log
from disttorch.launcher.signals import StopSignals
from disttorch.launcher.summary import failure_summary, interruption_message
from disttorch.launcher.workers import WorkerGroup, WorkerState, describe_exit


class Agent:
    """One per node. Each attempt moves the worker group INIT -> HEALTHY -> SUCCEEDED or FAILED (or
    STOPPED when another node failed); the coordinator makes all nodes take the same next step."""

    def __init__(self, spec: LaunchSpec, coordinator: Coordinator, signals: StopSignals):
        self.spec = spec
        self.coordinator = coordinator
        self.signals = signals

    def run(self) -> int:
        """Returns the launcher's exit status: 0, 1 when the job failed, 128+signal when interrupted."""
        self.coordinator.rendezvous()
        restart_count, verdict = 0, None
        while True:
            try:
                plan = self.coordinator.begin_round(restart_count)
            except (Interrupted, LaunchError) as stopped:
                if verdict is None:
                    raise
                # Waiting for lost nodes to come back ended: report the failure that made us wait.
                why = f"{stopped.name} while waiting to restart" if isinstance(stopped, Interrupted) \
                    else stopped.format_message()
                verdict.reason = f"{verdict.reason}; then {why}"
                return self._report(verdict)
            result = self._run_round(plan)
            verdict = self.coordinator.finish_round(result, restart_count)
            if not verdict.restart:
                return self._report(verdict)
            restart_count += 1
            log(f"{verdict.reason}; restarting the worker group ({restart_count}/{self.spec.max_restarts})")

    def _run_round(self, plan: RoundPlan) -> RoundResult:
        group = WorkerGroup(self.spec, plan)
        try:
            self.signals.check()
            group.start()
            last_rank = plan.rank_offset + self.spec.nproc - 1
            pids = " ".join(map(str, group.pids()))
            log(f"node {self.spec.node_rank}: started ranks {plan.rank_offset}..{last_rank} of {plan.world_size} "
                f"(pids {pids}), store at {self.spec.master_addr}:{plan.worker_master_port}")
            return self._watch(group)
        finally:
            group.stop(self.spec.grace_period, self.signals.hurry)
            group.remove_traces()

    def _watch(self, group: WorkerGroup) -> RoundResult:
        node = self.spec.node_rank
        while True:
            state = group.poll()
            if state is WorkerState.FAILED:
                first = group.first_failure()
                reason = f"rank {first.rank} on node {node} ended with {describe_exit(first.exit_code)}"
                log(f"worker group FAILED: {reason}; stopping all workers")
                self.coordinator.announce_halt(reason)
                self._stop(group)
                return RoundResult(node, NodeOutcome.FAILED, group.failures(), reason, group.positions())
            if self.signals.signum is not None:
                # A lost node whose hang-up is already here caused the signal (compose stops every
                # container once one died): it stays the reason the job stopped.
                earlier = self.coordinator.wait(0)
                if earlier is not None:
                    log(f"stopping the workers on node {node}: {earlier}")
                    self._stop(group)
                    return RoundResult(node, NodeOutcome.STOPPED, group.failures(), earlier, group.positions())
                reason = f"node {node}'s launcher got {self.signals.name}"
                log(f"got {self.signals.name}: stopping all workers (SIGKILL after {self.spec.grace_period:g}s; "
                    f"Ctrl-C again to kill them now)")
                self.coordinator.announce_halt(reason)
                self._stop(group)
                return RoundResult(node, NodeOutcome.INTERRUPTED, group.failures(), reason, group.positions())
            if state is WorkerState.SUCCEEDED:
                return RoundResult(node, NodeOutcome.SUCCEEDED)
            stop_reason = self.coordinator.wait(self.spec.monitor_interval)
            if stop_reason is not None:
                log(f"stopping the workers on node {node}: {stop_reason}")
                self._stop(group)
                return RoundResult(node, NodeOutcome.STOPPED, group.failures(), stop_reason, group.positions())

    def _stop(self, group: WorkerGroup) -> None:
        group.stop(self.spec.grace_period, self.signals.hurry)

    def _report(self, verdict: Verdict) -> int:
        # A signal that arrives while the job is already failing (`docker compose` stopping every
        # container once one died) must not hide that failure behind an interruption.
        if self.signals.signum is not None and (verdict.interrupted or not verdict.failed):
            log(interruption_message(self.signals.signum, verdict.positions))
            return exit_status_for(self.signals.signum)
        if not verdict.failed:
            log(f"node {self.spec.node_rank}: all workers SUCCEEDED")
            return 0
        log("\n" + failure_summary(verdict.failures, verdict.reason, self.spec.multi_node, verdict.positions))
        return 1


def exit_status_for(signum: int) -> int:
    """What a shell reports for a process killed by `signum`, so scripts can tell an interrupt apart."""
    return 128 + int(signal.Signals(signum))
