"""The host heap policy applied at import: on glibc it is set, and environment settings win over it."""
import os
import subprocess
import sys

import pytest

from disttorch.core import heap

glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
                           reason="the policy is a glibc mallopt setting")


def _applied_in_fresh_process(extra_env):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    env.update(extra_env)
    code = "from disttorch.core import heap; print(heap.keep_freed_heap())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    return out.stdout.strip()


@glibc
def test_policy_applies_on_glibc():
    assert _applied_in_fresh_process({}) == "True"


@glibc
@pytest.mark.parametrize("setting", [{"MALLOC_TRIM_THRESHOLD_": "1000000"},
                                     {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1000000"},
                                     {"DISTTORCH_MALLOC_TUNING": "0"}], ids=str)
def test_user_malloc_settings_are_left_alone(setting):
    assert _applied_in_fresh_process(setting) == "False"


def test_other_platforms_are_left_alone(monkeypatch):
    monkeypatch.setattr(heap.sys, "platform", "darwin")
    assert heap.keep_freed_heap() is False
