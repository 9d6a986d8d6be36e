"""The rendezvous store, in-process: commands, blocking waits, timeouts, authentication."""
import threading
import time

import pytest

from disttorch.comm import DistStoreError, TCPStore


@pytest.fixture
def store():
    master = TCPStore("127.0.0.1", 0, is_master=True, timeout=5, secret=b"s")
    yield master
    master.close()


def client(master, **kwargs):
    kwargs.setdefault("secret", b"s")
    kwargs.setdefault("timeout", 5)
    return TCPStore("127.0.0.1", master.port, **kwargs)


def test_set_get_add_compare_set(store):
    other = client(store)
    store.set("key", "value")
    assert other.get("key") == b"value"
    assert other.add("counter", 2) == 2
    assert store.add("counter", 3) == 5
    assert store.get("counter") == b"5"
    assert other.compare_set("cas", "", "first") == b"first"
    assert other.compare_set("cas", "wrong", "second") == b"first"
    assert other.compare_set("cas", "first", "second") == b"second"
    assert other.check(["key", "cas"]) and not other.check(["missing"])
    assert other.delete_key("key") and not other.check(["key"])
    assert store.num_keys() == 2
    other.close()


def test_get_blocks_until_another_client_sets(store):
    other = client(store)
    threading.Timer(0.2, lambda: store.set("late", b"\x00bytes")).start()
    started = time.monotonic()
    assert other.get("late") == b"\x00bytes"
    assert time.monotonic() - started >= 0.15
    other.wait(["late"], timeout=1)
    other.close()


def test_get_and_wait_time_out_with_a_store_error(store):
    other = client(store, timeout=0.3)
    with pytest.raises(DistStoreError, match="timed out"):
        other.get("never")
    with pytest.raises(DistStoreError, match="timed out"):
        other.wait(["never"], timeout=0.2)
    store.set("after", "ok")
    assert other.get("after") == b"ok"  # a late reply to the timed-out get is ignored
    other.close()


def test_client_without_the_secret_gets_nothing(store):
    store.set("key", "value")
    stranger = client(store, secret=b"wrong", timeout=0.3)
    with pytest.raises(DistStoreError):
        stranger.get("key")
    with pytest.raises(DistStoreError):
        stranger.set("key", "evil")
    assert store.get("key") == b"value"
    stranger.close()


def test_no_server_times_out_naming_the_address():
    lonely = TCPStore("127.0.0.1", 1, timeout=0.2, secret=b"s")
    with pytest.raises(DistStoreError, match="127.0.0.1:1"):
        lonely.get("key")
    lonely.close()


def test_port_in_use_is_reported(store):
    with pytest.raises(DistStoreError, match="MASTER_PORT"):
        TCPStore("127.0.0.1", store.port, is_master=True, secret=b"s")


def test_prefix_store_namespaces_keys(store):
    from disttorch.comm import PrefixStore
    first, second = PrefixStore("a", store), PrefixStore("b", store)
    first.set("key", "1")
    second.set("key", "2")
    assert first.get("key") == b"1" and second.get("key") == b"2"
    assert store.get("a/key") == b"1"
    assert first.add("n", 4) == 4 and not second.check(["n"])


def test_values_larger_than_a_frame_travel_in_parts(store):
    from disttorch.comm import store as store_module
    other = client(store)
    value = bytes(range(256)) * (3 * store_module.FRAME_BYTES // 256 + 7)
    other.set("big", value)
    assert store.get("big") == value
    assert other.compare_set("big", value, value[::-1]) == value[::-1]
    with pytest.raises(ValueError, match="at most 16 MiB per value"):
        other.set("huge", b"x" * (store_module.MAX_MESSAGE_BYTES + 1))
    other.close()


def test_parts_past_the_cap_are_refused_with_the_reason(store):
    # What a client holding the secret but not using TCPStore's checks could send.
    from disttorch.comm import store as store_module
    crafted = client(store)
    piece = b"x" * (store_module.FRAME_BYTES - 128)
    deadline = time.monotonic() + 60
    with crafted._lock:
        for _ in range(store_module.MAX_MESSAGE_BYTES // len(piece) + 1):
            assert crafted._send(deadline, "_part", piece)
        assert crafted._send(deadline, "_last_part", piece)
        ok, result = crafted._await_reply(crafted._counter, "set", (), 60, deadline)
    assert not ok and "refused: the store carries at most 16 MiB per request" in result, result
    assert store.num_keys() == 0
    crafted.close()


def test_wrong_secret_is_told_apart_after_a_client_of_an_unreachable_store_closed(store):
    # Clients used to share one ZeroMQ context: closing one whose request still waited for an
    # unreachable address stalled the next one's handshake events about once in twelve tries,
    # and its wrong secret was then reported as "could not reach" after its whole timeout.
    for _ in range(25):
        lonely = TCPStore("127.0.0.1", 1, timeout=0.05, secret=b"s")
        with pytest.raises(DistStoreError, match="could not reach"):
            lonely.get("key")
        lonely.close()
        stranger = client(store, secret=b"wrong", timeout=20)
        with pytest.raises(DistStoreError, match="DISTTORCH_SECRET differs"):
            stranger.get("key")
        stranger.close()
