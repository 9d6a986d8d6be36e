import pytest

from netns import NetnsHosts, NetnsUnavailable


def _build(hosts: NetnsHosts):
    try:
        hosts.create()
    except NetnsUnavailable as why:
        pytest.skip(f"cannot build network-namespace hosts: {why}")
    return hosts


@pytest.fixture
def two_hosts():
    hosts = _build(NetnsHosts(2))
    yield hosts
    hosts.destroy()


@pytest.fixture
def compose_hosts():
    """Two hosts that know each other as `master` and `worker`, like the services in docker/compose.yaml."""
    hosts = _build(NetnsHosts(2, names=("master", "worker")))
    yield hosts
    hosts.destroy()


@pytest.fixture
def three_hosts():
    hosts = _build(NetnsHosts(3))
    yield hosts
    hosts.destroy()
