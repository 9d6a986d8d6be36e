"""Ctrl-C, SIGTERM and SIGHUP to the launcher become a flag that every wait loop checks."""

import signal

from disttorch.launcher.errors import Interrupted

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopSignals:
    def __init__(self):
        self.received: list[int] = []

    def install(self) -> None:
        # A flag instead of an exception: an exception raised mid-spawn could lose track of a worker.
        for sig in HANDLED_SIGNALS:
            signal.signal(sig, self._handle)

    def ignore_from_now(self) -> None:
        """The outcome is decided: later signals are ignored. Python drops its handlers while the interpreter
        shuts down, so a late SIGTERM (compose stopping every container once one died) would otherwise turn
        the job's exit status into 143."""
        for sig in HANDLED_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)

    def _handle(self, signum, frame) -> None:
        self.received.append(signum)

    @property
    def signum(self) -> int | None:
        return self.received[0] if self.received else None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    def hurry(self) -> bool:
        """A second signal means: do not wait for the grace period, kill the workers now."""
        return len(self.received) >= 2

    def check(self) -> None:
        if self.received:
            raise Interrupted(self.received[0])
