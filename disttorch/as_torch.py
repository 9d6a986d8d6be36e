"""Run an unmodified PyTorch script on disttorch: `python -m disttorch.as_torch train.py [args...]`.

`import torch`, `import torch.nn.functional as F`, `from torchvision import transforms` and the like
resolve to disttorch's modules for this process only (see disttorch._torch_alias). The script runs as
`__main__` with `sys.argv == [script, args...]` and its own directory first on sys.path, exactly as
`python train.py` would run it. `-m module` runs a module instead, like `python -m`.

multiprocessing children started with "spawn" or "forkserver" (torch.multiprocessing.spawn, DataLoader
workers with a spawn context) re-run the script's top level before they unpickle their target. They
find the script's module spec pointing at disttorch._as_torch_mp_main, which installs the alias in the
child first and then runs the script there as `__mp_main__`.
"""
import builtins
import importlib.machinery
import importlib.util
import os
import sys
import types

from . import _torch_alias

# What a spawned child must re-run as its __main__; read by disttorch._as_torch_mp_main.
MAIN_ENV = "DISTTORCH_AS_TORCH_MAIN"
_SPAWN_MAIN_MODULE = "disttorch._as_torch_mp_main"

_USAGE = "usage: python -m disttorch.as_torch (script.py | -m module) [args...]"


def run_path(path, args=()):
    """Install the alias, then run the file at `path` as __main__ with `args` as sys.argv[1:]."""
    _torch_alias.install()
    path = os.fspath(path)
    absolute = os.path.abspath(path)
    sys.argv = [path, *args]
    sys.path[0] = os.path.dirname(absolute)
    _run_as_main(_PATH_PREFIX + absolute)


def run_module(name, args=()):
    """Install the alias, then run module `name` as __main__, like `python -m name args...`."""
    _torch_alias.install()
    sys.path[0] = os.getcwd()
    code, filename, _ = _main_code(_MODULE_PREFIX + name)
    sys.argv = [filename, *args]
    _run_as_main(_MODULE_PREFIX + name)


# MAIN_ENV holds "path:<absolute file>" or "module:<name>": what __main__ runs, for spawned children.
_PATH_PREFIX = "path:"
_MODULE_PREFIX = "module:"


def _main_code(target):
    """(code, file name, package) of a MAIN_ENV target."""
    if target.startswith(_PATH_PREFIX):
        path = target[len(_PATH_PREFIX):]
        with open(path, "rb") as handle:
            return compile(handle.read(), path, "exec"), path, None
    name = target[len(_MODULE_PREFIX):]
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise ModuleNotFoundError(f"No module named '{name}'", name=name)
    if spec.submodule_search_locations is not None:  # a package runs its __main__, as `python -m` does
        name += ".__main__"
        spec = importlib.util.find_spec(name)
    return spec.loader.get_code(name), spec.origin, name.rpartition(".")[0]


def _run_as_main(target):
    os.environ[MAIN_ENV] = target
    code, filename, package = _main_code(target)
    main = types.ModuleType("__main__")
    main.__file__ = filename
    main.__builtins__ = builtins
    main.__package__ = package
    # Named after the module that can rebuild this __main__ in a spawned child (see the docstring).
    main.__spec__ = importlib.machinery.ModuleSpec(_SPAWN_MAIN_MODULE, None, origin=filename)
    sys.modules["__main__"] = main
    exec(code, main.__dict__)


def become_spawned_main(namespace):
    """In a spawned child: turn `namespace` (the child's __mp_main__ globals) into the user's __main__."""
    _torch_alias.install()
    target = os.environ.get(MAIN_ENV)
    if not target:
        raise RuntimeError(f"{_SPAWN_MAIN_MODULE} runs only in children of `python -m disttorch.as_torch`, "
                           f"which set {MAIN_ENV}")
    code, filename, package = _main_code(target)
    for name in [key for key in namespace if not key.startswith("__")]:
        del namespace[name]
    namespace["__file__"] = filename
    namespace["__package__"] = package
    exec(code, namespace)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_USAGE, file=sys.stderr if not argv else sys.stdout)
        return 2 if not argv else 0
    try:
        if argv[0] == "-m":
            if len(argv) < 2:
                print(_USAGE, file=sys.stderr)
                return 2
            try:
                run_module(argv[1], argv[2:])
            except ModuleNotFoundError as missing:
                if missing.name != argv[1]:
                    raise
                print(f"disttorch.as_torch: no module named {argv[1]!r}", file=sys.stderr)
                return 2
        else:
            if not os.path.isfile(argv[0]):
                print(f"disttorch.as_torch: can't open file {argv[0]!r}: no such file", file=sys.stderr)
                return 2
            run_path(argv[0], argv[1:])
    except _torch_alias.AliasRefused as refused:
        print(refused, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
