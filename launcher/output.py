"""Copying worker output to the console (with a rank prefix) and to per-rank log files."""

import collections
import os
import re
import sys
import threading
from typing import BinaryIO

_CONSOLE_LOCK = threading.Lock()
# Progress bars redraw with a bare "\r"; treating it as a line end keeps them live behind the prefix.
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)")
STDERR_TAIL_LINES = 12


class OutputPump(threading.Thread):
    """Reads one worker pipe until EOF and copies each line to the console and/or a log file."""

    def __init__(self, pipe: BinaryIO, prefix: str, console: BinaryIO | None, log_file: BinaryIO | None):
        super().__init__(daemon=True)
        self._pipe = pipe
        self._prefix = prefix.encode()
        self._console = console
        self._log_file = log_file
        self.tail = collections.deque(maxlen=STDERR_TAIL_LINES)

    def run(self):
        pending = b""
        fd = self._pipe.fileno()
        try:
            while chunk := os.read(fd, 65536):
                pending += chunk
                end = 0
                for match in _LINE.finditer(pending):
                    self._emit(match.group())
                    end = match.end()
                pending = pending[end:]
            if pending:
                self._emit(pending + b"\n")
        finally:
            self._pipe.close()
            if self._log_file is not None:
                self._log_file.close()

    def _emit(self, line: bytes):
        text = line.rstrip(b"\r\n")
        if text:
            self.tail.append(text.decode(errors="replace"))
        if self._log_file is not None:
            self._log_file.write(line)
            self._log_file.flush()
        if self._console is not None:
            with _CONSOLE_LOCK:
                try:
                    self._console.write(self._prefix + line)
                    self._console.flush()
                except OSError:
                    # The console went away (e.g. piped into `head`); keep draining so the worker never
                    # blocks on a full pipe, and keep the log file going.
                    self._console = None


def console_streams() -> tuple[BinaryIO, BinaryIO]:
    return sys.stdout.buffer, sys.stderr.buffer


def log(message: str) -> None:
    """A launcher message (not worker output) on stderr, never interleaved mid-line with worker lines."""
    with _CONSOLE_LOCK:
        sys.stderr.write(f"[disttorch-launch] {message}\n")
        sys.stderr.flush()
