"""Where each worker's stdout and stderr go: torchrun's --redirects/--tee values and disttorch's defaults.

A value is 0 (neither stream), 1 (stdout), 2 (stderr), 3 (both), or per local rank: "0:3,1:2".
"""

import re
from dataclasses import dataclass

STDOUT, STDERR = 1, 2
_PER_RANK = re.compile(r"\d+:[0-3](,\d+:[0-3])*")


def parse_streams(value: str) -> dict[int | None, int]:
    """{local_rank: streams}, with None for "every local rank". Raises ValueError naming the forms."""
    value = value.strip()
    if value in ("0", "1", "2", "3"):
        return {None: int(value)}
    if _PER_RANK.fullmatch(value):
        return {int(rank): int(streams) for rank, streams in (item.split(":") for item in value.split(","))}
    raise ValueError(f"{value!r} is not one of 0 (none), 1 (stdout), 2 (stderr), 3 (both) or a per-local-rank "
                     "list like 0:3,1:2")


def looks_like_streams(token: str) -> bool:
    try:
        parse_streams(token)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class OutputRouting:
    """--log-dir alone sends both streams to files only. With --redirects/--tee (torchrun's meaning), the
    streams they name go to files (--tee: and the console) and the others to the console only."""

    log_dir_given: bool
    redirects: dict[int | None, int] | None = None
    tee: dict[int | None, int] | None = None

    def destinations(self, local_rank: int, stream: int) -> tuple[bool, bool]:
        """(to the log file, to the console) for one stream (STDOUT or STDERR) of one local rank."""
        if not self.log_dir_given:
            return False, True
        if self.redirects is None and self.tee is None:
            return True, False
        teed = bool(_streams_of(self.tee, local_rank) & stream)
        redirected = bool(_streams_of(self.redirects, local_rank) & stream)
        return teed or redirected, teed or not redirected


def _streams_of(mapping: dict[int | None, int] | None, local_rank: int) -> int:
    if not mapping:
        return 0
    return mapping.get(local_rank, mapping.get(None, 0))
