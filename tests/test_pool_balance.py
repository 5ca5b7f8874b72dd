"""Issue F, with real processes: connections spread over the workers, a request never waits behind a
busy worker while another is free, and slow clients or a killed worker never reset parked clients."""

from __future__ import annotations

import socket
import time

import pytest

from helpers import Client, Server, background_get, child_pids, eventually, wait_exit
from load import Load

WORKER_ARGS = {"sync": ["-k", "sync"], "threaded": ["-k", "threaded", "--threads", "1"]}


def booted(server: Server, count: int) -> None:
    eventually(lambda: server.log().count("Booted worker") >= count, 15, f"{count} workers booted")


def pid_of(client: Client) -> int:
    client.send(b"GET /pid HTTP/1.1\r\nHost: t\r\n\r\n")
    response = client.read_response()
    assert response.status == 200
    return int(response.body)


def open_clients(server: Server, count: int) -> list[tuple[Client, int]]:
    """``count`` keep-alive clients opened one after another, each with the pid that served it."""
    clients = []
    for _ in range(count):
        client = Client(server.connect(timeout=10))
        clients.append((client, pid_of(client)))
    return clients


@pytest.mark.parametrize("worker_class", list(WORKER_ARGS))
def test_connections_opened_one_by_one_spread_over_the_workers(fresh_server, worker_class):
    server = fresh_server(*WORKER_ARGS[worker_class], "-w", "4", "--keep-alive", "30")
    booted(server, 4)
    clients = open_clients(server, 40)
    try:
        split: dict[int, int] = {}
        for _, pid in clients:
            split[pid] = split.get(pid, 0) + 1
        assert len(split) == 4 and min(split.values()) >= 6, split  # an even split is 10 each
        # and each keeps serving its own connections
        for client, pid in clients:
            assert pid_of(client) == pid
    finally:
        for client, _ in clients:
            client.sock.close()


@pytest.mark.parametrize("worker_class", list(WORKER_ARGS))
def test_a_slow_request_does_not_delay_the_other_clients_of_its_worker(fresh_server, worker_class):
    server = fresh_server(*WORKER_ARGS[worker_class], "-w", "2", "--keep-alive", "30")
    booted(server, 2)
    clients = open_clients(server, 8)
    try:
        slow_client, slow_pid = clients[0]
        neighbours = [client for client, pid in clients[1:] if pid == slow_pid]
        assert neighbours, "no other client shares the slow client's worker"
        slow_client.send(b"GET /sleep?3 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.2)  # the slow request is running (it lasts 3 s: no race with the bound below)
        for _ in range(3):
            for client, _ in clients[1:]:
                started = time.monotonic()
                client.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
                assert client.read_response().status == 200
                assert time.monotonic() - started < 0.5, "a request waited behind the slow one"
        assert slow_client.read_response().body == b"slept"
        # the process titles (and the scoreboard behind /status) show the hand-offs
        eventually(
            lambda: "handed off" in title_of_workers(server) and "taken over" in title_of_workers(server),
            5,
            "hand-offs in the process titles",
        )
    finally:
        for client, _ in clients:
            client.sock.close()


def title_of_workers(server: Server) -> str:

    titles = []
    for pid in child_pids(server.pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                titles.append(f.read().replace(b"\0", b" ").decode(errors="replace"))
        except FileNotFoundError:
            pass
    return "\n".join(titles)


@pytest.mark.parametrize("worker_class", list(WORKER_ARGS))
def test_a_stalled_body_gets_408_before_the_master_kill_and_neighbours_keep_going(fresh_server, worker_class):
    server = fresh_server(
        *WORKER_ARGS[worker_class], "-w", "2", "--keep-alive", "30", "--timeout", "3", "--read-timeout", "30"
    )
    booted(server, 2)
    clients = open_clients(server, 8)
    try:
        staller, staller_pid = clients[0]
        neighbours = [(c, pid) for c, pid in clients[1:] if pid == staller_pid]
        assert neighbours
        staller.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n0123456789")
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:  # the neighbours are served all along
            for client, _ in neighbours:
                started = time.monotonic()
                client.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
                assert client.read_response().status == 200
                assert time.monotonic() - started < 0.5
            time.sleep(0.1)
        assert staller.read_response().status == 408  # read timeout capped at 0.8 x --timeout
        assert "WORKER TIMEOUT" not in server.log()
    finally:
        for client, _ in clients:
            client.sock.close()


@pytest.mark.parametrize("worker_class", list(WORKER_ARGS))
def test_a_slow_reader_is_dropped_without_a_kill_and_neighbours_keep_going(fresh_server, worker_class):
    server = fresh_server(
        *WORKER_ARGS[worker_class],
        "-w",
        "2",
        "--keep-alive",
        "30",
        "--timeout",
        "3",
        "--write-timeout",
        "1",
        "--min-write-rate",
        "100000",
    )
    booted(server, 2)
    clients = open_clients(server, 6)
    reader = socket.socket()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.settimeout(10)
    reader.connect(("127.0.0.1", server.port))
    try:
        reader.sendall(b"GET /bytes?200000000 HTTP/1.1\r\nHost: t\r\n\r\n")
        for _ in range(8):  # 16 KiB every 0.5 s: far below --min-write-rate
            assert reader.recv(16384)
            for client, _ in clients:
                client.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
                assert client.read_response().status == 200  # nobody parked was reset
            time.sleep(0.5)
        received = 0  # what the kernel still holds of a dropped response, then the end
        try:
            while received < 50_000_000 and (data := reader.recv(1 << 20)):
                received += len(data)
        except ConnectionResetError:
            pass
        assert received < 50_000_000, "the slow reader was never dropped"
        assert "WORKER TIMEOUT" not in server.log()
        for client, _ in clients:
            client.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
            assert client.read_response().status == 200
    finally:
        reader.close()
        for client, _ in clients:
            client.sock.close()


@pytest.mark.parametrize("worker_class", list(WORKER_ARGS))
def test_killing_a_hung_worker_does_not_reset_its_parked_connections(fresh_server, worker_class):
    server = fresh_server(*WORKER_ARGS[worker_class], "-w", "2", "--keep-alive", "60", "--timeout", "2")
    booted(server, 2)
    clients = open_clients(server, 8)
    try:
        hung, hung_pid = clients[0]
        # The set-up needs connections parked on the worker that will hang: the balance puts about
        # half of them there (tested above), but a machine busy elsewhere can delay that worker's
        # gates for a while (seen once in CI-like runs with a CPU hog): open more then.
        while len(clients) < 24 and all(pid != hung_pid for _, pid in clients[1:]):
            clients += open_clients(server, 1)
        parked = [c for c, pid in clients[1:] if pid == hung_pid]
        assert parked, ([pid for _, pid in clients], server.log()[-3000:])
        hung.send(b"GET /sleep?60 HTTP/1.1\r\nHost: t\r\n\r\n")
        server.wait_log("timed out and was killed", timeout=15)
        for client in parked:
            assert pid_of(client) != hung_pid  # served elsewhere, not reset
    finally:
        for client, _ in clients:
            client.sock.close()


@pytest.mark.parametrize("worker_class", list(WORKER_ARGS))
def test_nothing_is_lost_across_reloads_while_connections_are_handed_off(fresh_server, worker_class):
    server = fresh_server(*WORKER_ARGS[worker_class], "-w", "2", "--keep-alive", "30", "--handoff-delay", "0.01")
    booted(server, 2)
    slow = [background_get(server, "/sleep?0.3") for _ in range(4)]
    with Load(server, "/hello", clients=8) as load:
        for _ in range(3):
            count = server.log().count("Reload complete")
            server.signal(1)  # SIGHUP
            eventually(lambda c=count: server.log().count("Reload complete") > c, 15, "reload complete")
            slow += [background_get(server, "/sleep?0.3") for _ in range(4)]
    assert load.ok > 0 and not load.failures, load.failures
    for item in slow:
        item["thread"].join(10)
        assert item.get("response") is not None and item["response"].body == b"slept", item


@pytest.mark.parametrize("worker_class", list(WORKER_ARGS))
def test_nothing_is_lost_when_term_arrives_while_connections_are_handed_off(fresh_server, worker_class):

    server = fresh_server(*WORKER_ARGS[worker_class], "-w", "2", "--keep-alive", "30", "--handoff-delay", "0.01")
    booted(server, 2)
    clients = open_clients(server, 8)
    try:
        slow_client = clients[0][0]
        slow_client.send(b"GET /sleep?0.5 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.05)
        for client, _ in clients[1:]:  # those parked with the slow one are handed off
            client.send(b"GET /sleep?0.2 HTTP/1.1\r\nHost: t\r\n\r\n")
        server.signal(15)  # SIGTERM while hand-offs are in flight
        for client, _ in clients:
            response = client.read_response()
            assert response.status == 200 and response.header("Connection") == "close"
        assert wait_exit(server, 15) == 0
    finally:
        for client, _ in clients:
            client.sock.close()


@pytest.mark.parametrize("worker_class", list(WORKER_ARGS))
def test_a_new_connection_is_served_in_turn_while_the_worker_is_busy(fresh_server, worker_class):
    """One worker, busy with keep-alive clients that never pause: a new connection is
    accepted and its request served in its turn (first come, first served), not left in the kernel's
    backlog until the load stops: no sibling could have taken it."""
    server = fresh_server(*WORKER_ARGS[worker_class], "-w", "1", "--keep-alive", "30")
    with Load(server, "/sleep?0.02", clients=6) as load:
        load.wait_for(lambda state: state.ok >= 20)
        for _ in range(3):
            with Client(server.connect(timeout=20)) as client:
                before = load.ok
                client.send(b"GET /sleep?0.02 HTTP/1.1\r\nHost: t\r\n\r\n")
                assert client.read_response().body == b"slept"
                served_meanwhile = load.ok - before
            # in its turn: behind at most one request of each of the 6 clients (and a few more, as
            # the head is read after those that came in the same batch of events); starved, hundreds
            assert served_meanwhile <= 24, served_meanwhile
    assert not load.failures, load.failures
