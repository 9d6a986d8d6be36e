"""What `pip install .` puts on a user's machine: the launcher only under the disttorch namespace."""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest
from launch_helpers import REPO


def _setuptools_with_spdx_licenses():
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip(f"setuptools {setuptools.__version__} predates SPDX license expressions")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    _setuptools_with_spdx_licenses()
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, source / name)
    for folder in ("disttorch", "launcher"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    # CC=false makes the optional int8 extension fail to build at once (it is optional), keeping this quick.
    env = dict(os.environ, CC="false")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                            "-w", str(source / "dist"), str(source)],
                           cwd=source, env=env, capture_output=True, text=True, timeout=150)
    assert built.returncode == 0, built.stdout + built.stderr
    [path] = (source / "dist").glob("*.whl")
    return zipfile.ZipFile(path), built.stdout + built.stderr


@pytest.mark.timeout(180)
def test_the_wheel_has_no_top_level_launcher_package(wheel):
    archive, _ = wheel
    top_level = {name.split("/")[0] for name in archive.namelist() if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"disttorch"}
    assert "disttorch/launcher/cli.py" in archive.namelist()
    entry_points = next(name for name in archive.namelist() if name.endswith("entry_points.txt"))
    assert "disttorch-launch = disttorch.launcher.cli:main" in archive.read(entry_points).decode()


@pytest.mark.timeout(180)
def test_the_build_prints_no_deprecation_banner(wheel):
    archive, output = wheel
    assert "Deprecat" not in output
    metadata = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
    assert "License-Expression: MIT" in archive.read(metadata).decode()
