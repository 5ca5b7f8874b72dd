"""Pure pool-balance rules and the hand-off message format, without processes."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest

from prefork import scoreboard as sb
from prefork.balance import client_io_timeout, reclaim_candidate, should_accept, surplus, write_too_slow
from prefork.handoff import Channel, Parcel, decode, encode


@pytest.mark.parametrize(
    ("mine", "siblings", "verdict"),
    [
        (0, [5, 5], True),  # an empty worker always accepts
        (1, [0, 0], True),  # within the slack
        (2, [0, 3], False),  # ahead of the least-loaded sibling by more than the slack
        (2, [1, 3], True),
        (10, [], True),  # no sibling can take one (all busy, or none): accept
        (11, [10, 12], True),
        (12, [10, 12], False),
    ],
)
def test_should_accept(mine, siblings, verdict):
    assert should_accept(mine, siblings) is verdict


@pytest.mark.parametrize(
    ("mine", "siblings", "excess"),
    [(40, [0, 0, 0], 20), (3, [0], 1), (2, [0], 0), (2, [], 0), (10, [4, 9], 3), (6, [5], 0)],
)
def test_surplus_hands_back_half_the_lead(mine, siblings, excess):
    assert surplus(mine, siblings) == excess


def conn(**fields):
    base = {"busy": False, "head_since": 0.0, "buf": b"", "requests": 1, "idle_since": 10.0}
    return SimpleNamespace(**{**base, **fields})


def test_reclaim_candidate_is_the_longest_idle_keepalive_connection():
    oldest, newer = conn(idle_since=1.0), conn(idle_since=5.0)
    others = [
        conn(busy=True, idle_since=0.1),
        conn(head_since=3.0, idle_since=0.2),
        conn(buf=b"GET", idle_since=0.3),
        conn(requests=0, idle_since=0.4),
    ]
    assert reclaim_candidate([newer, *others, oldest]) is oldest
    assert reclaim_candidate(others) is None


def test_write_too_slow_after_the_grace_only():
    assert not write_too_slow(elapsed=5, sent=0, grace=10, min_rate=4096)
    assert write_too_slow(elapsed=11, sent=4096 * 10, grace=10, min_rate=4096)
    assert not write_too_slow(elapsed=11, sent=4096 * 12, grace=10, min_rate=4096)
    assert not write_too_slow(elapsed=1000, sent=0, grace=10, min_rate=0)


@pytest.mark.parametrize(
    ("configured", "timeout", "effective"), [(30, 30, 24), (10, 30, 10), (0, 30, 24), (30, 0, 30), (0, 0, 0)]
)
def test_client_io_timeouts_end_before_the_master_timeout(configured, timeout, effective):
    assert client_io_timeout(configured, timeout) == effective


def test_parcel_round_trip():
    parcel = Parcel(
        b"GET / HTTP/1.1\r\n",
        3,
        True,
        False,
        {"REMOTE_ADDR": "10.0.0.1", "REMOTE_PORT": "5", "SERVER_NAME": "h", "SERVER_PORT": "80"},
        0.25,
    )
    assert decode(encode(parcel)) == parcel


@pytest.mark.parametrize("message", [b"", b"\x05\x00[1,2", b"\x02\x00{}", b"\x0b\x00[1,2,3,4,5]"])
def test_malformed_parcels_are_refused(message):
    with pytest.raises(ValueError):
        decode(message)


def test_channel_carries_a_live_socket_and_its_bytes():
    channel = Channel()
    left, right = socket.socketpair()
    try:
        parcel = Parcel(b"already read", 1, False, False, {}, -1.0)
        assert channel.send(left, parcel)
        left.close()  # the sender's copy goes; the connection lives on in the message
        sock, received = channel.receive()
        assert received.buf == b"already read"
        sock.sendall(b"ping")
        assert right.recv(4) == b"ping"
        sock.close()
        assert channel.receive() is None
    finally:
        right.close()
        channel.close()


def test_scoreboard_sibling_loads_skip_busy_and_absent_workers():
    board = sb.Scoreboard(4, threads=1)
    for index, (state, connections) in enumerate([(sb.READY, 3), (sb.READY, 7), (sb.DRAINING, 1), (sb.READY, 2)]):
        board.reset(index, 0.0)
        board.set_state(index, state)
        board.set_connections(index, connections)
    board.entry(3, 0).started(1.0, b"GET /slow")  # worker 3 is inside a request
    assert board.sibling_loads(0) == [7]
    board.entry(3, 0).finished()
    assert sorted(board.sibling_loads(0)) == [2, 7]
    board.release(1)
    assert board.sibling_loads(0) == [2]
    board.count_handoffs(0, 5, 6)
    assert board.handoffs(0) == (5, 6)
    board.set_message(0, "bye")
    assert board.message(0) == "bye" and board.read(0)[1] == sb.READY


def test_request_stats_batch_and_round_trip_through_the_scoreboard():
    from prefork.stats import SIZE, RequestStats, Totals

    stats = RequestStats()
    stats.observe_batch(
        [("GET", 200, 0.003, 0, 13), ("GET", 200, 0.2, 0, 13), ("BREW", 418, 20.0, 5, 0), ("POST", 0, 0.01, 100, 0)]
    )
    stats.observe_batch([("GET", 200, 0.004, 0, 13)])
    board = sb.Scoreboard(2, threads=1, stats_size=SIZE)
    board.stats_block(1)[:] = stats.pack()
    totals = Totals.unpack(board.stats_block(1))
    assert totals.requests == {("GET", 200): 3, ("other", 418): 1, ("POST", 499): 1}
    assert totals.buckets[0] == 2 and totals.buckets[-1] == 1 and totals.count == 5  # <=5 ms twice, >10 s once
    assert (totals.bytes_in, totals.bytes_out) == (105, 39)
    assert abs(totals.duration_sum - 20.217) < 1e-9
    assert Totals.unpack(board.stats_block(0)).count == 0  # the other slot untouched
