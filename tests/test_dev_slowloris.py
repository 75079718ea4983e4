"""`relay dev` against slow and idle clients: headers or bodies dribbled byte by byte, kept-alive
connections that say nothing, more connections than the server takes, and enough idle sockets
to use up the process's descriptors. Each must be bounded by a timeout or the connection limit,
and a normal signed event must still be accepted and delivered."""

import json
import os
import selectors
import socket
import time

import pytest

from conftest import (accepted_id, add_github_source, add_subscription, http, send_github,
                      wait_until)

HEADER_TIMEOUT = 2
# Time the server may take past a timeout on a busy two-core machine; not a speed claim.
SLACK = 3


def connect(dev):
    sock = socket.create_connection(("127.0.0.1", dev.port), timeout=10)
    sock.setblocking(False)
    return sock


def peer_closed(sock):
    """Reads what is there; True once the server has closed the connection (EOF or reset)."""
    while True:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return False
        except OSError:
            return True
        if not data:
            return True


def send_byte(sock, byte):
    """False when the server has closed the connection."""
    try:
        sock.send(byte)
        return True
    except BlockingIOError:
        return True
    except OSError:
        return False


def dribble(sockets, payload, interval, deadline):
    """Sends `payload` one byte per `interval` on every socket until `deadline`; returns the
    sockets the server closed."""
    selector = selectors.DefaultSelector()
    for sock in sockets:
        selector.register(sock, selectors.EVENT_READ)
    closed = set()
    sent = 0
    next_send = time.monotonic()
    try:
        while len(closed) < len(sockets) and time.monotonic() < deadline:
            if time.monotonic() >= next_send and sent < len(payload):
                for sock in sockets:
                    if sock not in closed and not send_byte(sock, payload[sent:sent + 1]):
                        closed.add(sock)
                sent += 1
                next_send += interval
            for key, _ in selector.select(timeout=0.05):
                if key.fileobj not in closed and peer_closed(key.fileobj):
                    closed.add(key.fileobj)
    finally:
        selector.close()
    return closed


def read_until_closed(sock, deadline):
    """Everything the server sends until it closes; None when it is still open at `deadline`."""
    data = b""
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            time.sleep(0.05)
            continue
        except OSError:
            return data
        if not chunk:
            return data
        data += chunk
    return None


def accepted_connections(dev):
    """Connections the server has accepted (and holds a descriptor for): established sockets on
    its port with an inode; those still waiting in the listen backlog have none. Counted by inode:
    the kernel writes the table in pieces, and a socket closing meanwhile can make it list
    another one twice."""
    inodes = set()
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == dev.port and fields[3] == "01" and fields[9] != "0":
                inodes.add(fields[9])
    return len(inodes)


def close_all(sockets):
    for sock in sockets:
        sock.close()


@pytest.mark.dev(args=["--header-timeout-secs", str(HEADER_TIMEOUT),
                       "--idle-timeout-secs", "60", "--body-timeout-secs", "60"])
def test_headers_dribbled_slowly_are_cut_off_at_the_header_timeout(dev):
    header = b"POST /github HTTP/1.1\r\nHost: relay\r\nX-Padding: " + b"a" * 1000
    sockets = [connect(dev) for _ in range(100)]
    try:
        deadline = time.monotonic() + HEADER_TIMEOUT + SLACK
        closed = dribble(sockets, header, interval=0.2, deadline=deadline)
        still_open = len(sockets) - len(closed)
        print(f"connections still open {HEADER_TIMEOUT + SLACK} s after connecting, with a "
              f"{HEADER_TIMEOUT} s header timeout: {still_open} of {len(sockets)}")
        assert still_open == 0
    finally:
        close_all(sockets)
    assert http.get(f"{dev.url}/healthz", timeout=10).status_code == 200


@pytest.mark.dev(args=["--body-timeout-secs", "2", "--header-timeout-secs", "10"])
def test_a_body_that_does_not_arrive_in_time_gets_408(dev):
    body_timeout = 2
    sock = connect(dev)
    try:
        sock.setblocking(True)
        sock.sendall(b"POST /github HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{")
        sock.setblocking(False)
        # Bytes keep trickling in, but stop before the body timeout can fire: bytes the server
        # never reads would turn its close into a reset that can swallow the answer.
        started = time.monotonic()
        while time.monotonic() < started + body_timeout - 0.7:
            assert send_byte(sock, b" ")
            time.sleep(0.25)
        answer = read_until_closed(sock, deadline=started + body_timeout + SLACK)
        assert answer is not None, "the connection is still open past the body timeout"
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answer
        error = json.loads(payload)["error"]
        assert "body" in error and "2 s" in error, error
    finally:
        sock.close()


@pytest.mark.dev(args=["--idle-timeout-secs", "2", "--header-timeout-secs", "30"])
def test_an_idle_kept_alive_connection_is_closed_at_the_idle_timeout(dev):
    idle_timeout = 2
    sock = connect(dev)
    try:
        sock.setblocking(True)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first
        sock.setblocking(False)
        # The header timeout (30 s) is far off: only the idle timeout can close it in time.
        rest = read_until_closed(sock, deadline=time.monotonic() + idle_timeout + SLACK)
        assert rest is not None, "the idle kept-alive connection is still open"
        assert rest == b""
    finally:
        sock.close()


@pytest.mark.dev(args=["--max-connections", "20", "--header-timeout-secs", "3",
                       "--idle-timeout-secs", "3"])
def test_connections_over_the_limit_wait_and_a_fresh_event_gets_through(dev, sink, sub_secret):
    secret = add_github_source(dev)
    add_subscription(dev, "github", f"{sink.url}/ok/limit", secret=sub_secret)
    idle = [connect(dev) for _ in range(40)]
    try:
        wait_until(lambda: accepted_connections(dev) >= 20, timeout=10,
                   message="the first 20 connections accepted")
        held = []
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            held.append(accepted_connections(dev))
            time.sleep(0.05)
        print(f"connections held by the server with 40 open and --max-connections 20: "
              f"at most {max(held)}")
        assert max(held) <= 20
        # Behind the 40 in the backlog: accepted once the idle ones have timed out.
        response, body, _ = send_github(dev, secret)
        accepted_id(response)
        delivered = sink.wait_for("/ok/limit", 1, timeout=20)
        assert delivered[0]["body"] == body
    finally:
        close_all(idle)


@pytest.mark.dev(open_files=256, args=["--header-timeout-secs", "2", "--idle-timeout-secs", "2"])
def test_the_store_keeps_working_while_hundreds_of_idle_sockets_are_held(dev, sink, sub_secret):
    secret = add_github_source(dev)
    add_subscription(dev, "github", f"{sink.url}/ok/fds", secret=sub_secret)
    # More than the process's 256 descriptors could ever hold at once.
    idle = [socket.create_connection(("127.0.0.1", dev.port), timeout=10) for _ in range(300)]
    try:
        response, body, _ = send_github(dev, secret)
        accepted_id(response)
        delivered = sink.wait_for("/ok/fds", 1, timeout=20)
        assert delivered[0]["body"] == body
    finally:
        close_all(idle)
    log = dev.log_path.read_text(errors="replace")
    assert "unable to open database file" not in log
    assert "Too many open files" not in log


@pytest.mark.dev(args=["--header-timeout-secs", "60", "--idle-timeout-secs", "60",
                       "--body-timeout-secs", "60"])
def test_sigterm_stops_the_server_although_slow_clients_hold_connections(dev):
    stalled = connect(dev)
    stalled.send(b"POST /github HTTP/1.1\r\nHost: relay\r\n")
    kept_alive = connect(dev)
    kept_alive.setblocking(True)
    kept_alive.sendall(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
    assert kept_alive.recv(65536).startswith(b"HTTP/1.1 200")
    try:
        dev.proc.terminate()
        # Far below the 60 s timeouts: only the shutdown can end these connections in time.
        code = dev.proc.wait(timeout=20)
        assert code == 0, code
        assert "relay dev stopped" in dev.log_path.read_text(errors="replace")
    finally:
        stalled.close()
        kept_alive.close()
