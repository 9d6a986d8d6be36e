import signal

import click


class LaunchError(click.ClickException):
    """A problem the user can fix (bad address, missing script, a node that never came); exits 1."""

    def show(self, file=None):
        click.echo(f"disttorch-launch: error: {self.format_message()}", err=True, file=file)


class Interrupted(Exception):
    """The launcher got SIGINT/SIGTERM/SIGHUP while waiting; the job must stop."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name
