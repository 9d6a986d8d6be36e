import pytest

from netns import NetnsHosts, NetnsUnavailable


@pytest.fixture
def two_hosts():
    hosts = NetnsHosts(2)
    try:
        hosts.create()
    except NetnsUnavailable as why:
        pytest.skip(f"cannot build network-namespace hosts: {why}")
    yield hosts
    hosts.destroy()
