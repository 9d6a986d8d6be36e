"""The table the launcher prints when the job fails."""

import signal

from disttorch.launcher.workers import Failure, describe_exit

_RULE = "=" * 72


def failure_summary(failures: list[Failure], reason: str, multi_node: bool, positions: list[list] = ()) -> str:
    """Rank, host, pid and how each failed worker ended (root cause first, marked), where every rank was in
    its collectives (from the flight records in `positions`), then each failed worker's last stderr lines."""
    lines = [_RULE, f"disttorch-launch: job FAILED: {reason}"]
    if failures:
        lines.append("")
        lines.extend(_table(failures, multi_node))
    lines.extend(positions_section(positions))
    for index, failure in enumerate(failures):
        marker = " (root cause)" if index == 0 else ""
        lines.append("")
        lines.append(f"rank {failure.rank}{marker}: last lines of stderr:")
        lines.extend(f"    {line}" for line in failure.stderr_tail or ["(nothing written to stderr)"])
    lines.append(_RULE)
    return "\n".join(lines)


def positions_section(positions: list[list]) -> list[str]:
    """Where each rank was in its collectives, from the flight records; nothing when there were none."""
    if not positions:
        return []
    return ["", "where each rank was (flight recorder):", *(f"  rank {rank}: {where}" for rank, where in positions)]


def _table(failures: list[Failure], multi_node: bool) -> list[str]:
    header = ["rank", "node", "host", "pid", "exit", ""] if multi_node else ["rank", "host", "pid", "exit", ""]
    rows = [header]
    for index, failure in enumerate(failures):
        node = [str(failure.node_rank)] if multi_node else []
        ended = describe_exit(failure.exit_code) + (" before the others" if failure.exit_code == 0 else "")
        row = [str(failure.rank), *node, failure.host, str(failure.pid), ended]
        rows.append(row + ["<- root cause" if index == 0 else ""])
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


def interruption_message(signum: int, positions: list[list] = ()) -> str:
    """The launcher's last words after Ctrl-C: where each rank was is what a user stopping a hung job wants."""
    return "\n".join([f"disttorch-launch: stopped by {signal.Signals(signum).name}; all workers were terminated",
                      *positions_section(positions)])
