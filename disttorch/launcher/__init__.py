"""disttorch-launch, importable as `disttorch.launcher` (its code lives in the repository's launcher/ folder).

An installed disttorch maps `disttorch.launcher` onto launcher/ (pyproject's package-dir), so this file
is never installed. It serves source checkouts run through PYTHONPATH: there the launcher's modules are
found in the checkout's launcher/ folder. Nothing is installed under the top-level name `launcher`, so a
user's own launcher.py never shadows ours.
"""
import os

_checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if os.path.isfile(os.path.join(_checkout, "pyproject.toml")) and os.path.isfile(
        os.path.join(_checkout, "launcher", "cli.py")):
    __path__.append(os.path.join(_checkout, "launcher"))
