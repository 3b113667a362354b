"""The client's transport: an overall deadline per request, and the moment a request left; the
sandbox's arrival clock that the rate limit is judged by."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpcore
import pytest

from juhe_sandbox.server import Meter, _kernel_receive_time
from pipelines.juhe.client import JuheClient
from pipelines.juhe.errors import JuheTransientError
from pipelines.settings import Secret
from tests.fixtures_sandbox import SandboxFactory

pytestmark = pytest.mark.timing_sensitive


@pytest.fixture
def trickling_server() -> Iterator[str]:
    """Answers every request with one byte of a status line every 0.2 s, for up to a minute."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            connection.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\n" * 20:
                if stop.wait(0.2):
                    return
                connection.sendall(bytes([byte]))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/query"
    stop.set()
    server.close()
    thread.join(timeout=5)


def test_a_server_trickling_bytes_cannot_hold_a_request_past_its_deadline(
    trickling_server: str,
) -> None:
    # Every read completes well within the read timeout; only the overall deadline ends it.
    with (
        JuheClient(trickling_server, Secret("k"), read_timeout=10, deadline=1.0) as client,
        pytest.raises(JuheTransientError, match="timeout"),
    ):
        client.query("x")


def test_on_sent_is_called_once_after_the_server_received_the_request(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox = sandbox_factory()
    sent: list[float] = []
    with JuheClient(sandbox.url, Secret(sandbox.config.api_key)) as client:
        client.query(
            sandbox.dataset.companies[0].name, on_sent=lambda: sent.append(time.monotonic())
        )
    arrived = sandbox.stats()["last_request_at"]
    assert len(sent) == 1
    assert sent[0] >= arrived - 0.002  # the kernel had the bytes before the write returned


def test_the_sandbox_adds_the_one_way_network_delay_before_it_stamps_an_arrival(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox = sandbox_factory(net_delay_ms=200, net_delay_p99_ms=200)  # a constant 200 ms
    sent: list[float] = []
    with JuheClient(sandbox.url, Secret(sandbox.config.api_key)) as client:
        client.query(
            sandbox.dataset.companies[0].name, on_sent=lambda: sent.append(time.monotonic())
        )
    assert sandbox.stats()["last_request_at"] - sent[0] >= 0.19


def _stamped_exchange(server: socket.socket, delay: float) -> tuple[float, float | None]:
    """Send a request line, read its arrival `delay` seconds later: (sent, received)."""
    with socket.create_connection(server.getsockname()) as client:
        connection, _ = server.accept()
        with connection:
            client.sendall(b"GET / HTTP/1.1\r\n\r\n")
            sent = time.monotonic()
            time.sleep(delay)
            return sent, _kernel_receive_time(connection)


def test_the_sandbox_stamps_the_kernel_receive_time_not_when_its_thread_gets_to_it() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setsockopt(socket.SOL_SOCKET, 35, 1)  # SO_TIMESTAMPNS, as the sandbox sets it
        # Linux switches receive timestamps on lazily: wait until an exchange carries one.
        deadline = time.monotonic() + 30
        while True:
            sent, received = _stamped_exchange(server, 0.05)
            if received is not None and received <= sent + 0.01:
                break
            assert time.monotonic() < deadline, "the kernel never stamped a received packet"
            time.sleep(0.05)
        sent, received = _stamped_exchange(server, 0.3)  # the handler thread is late
    assert received is not None
    assert received <= sent + 0.05


def test_an_arrival_admitted_late_is_judged_against_every_window_holding_it() -> None:
    meter = Meter(fault_seed=1)
    assert meter.admit(1.0, qps_limit=2)
    assert meter.admit(1.5, qps_limit=2)
    # Arrived at 0.6 but admitted after the others (it waited out a longer network delay):
    # the window [0.6, 1.6) would hold three.
    assert not meter.admit(0.6, qps_limit=2)
    assert meter.admit(0.4, qps_limit=2)  # [0.4, 1.4) holds 0.4 and 1.0
    assert meter.violations == 1
    assert meter.admit(2.1, qps_limit=2)  # [1.5, 2.5) holds 1.5 and 2.1


def test_before_send_and_on_sent_surround_the_first_write_only() -> None:
    from pipelines.juhe import transport

    order: list[str] = []

    class Recording(httpcore.NetworkStream):
        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            order.append("write")

    stream = transport._DeadlineStream(Recording())
    with transport.exchange(
        5.0, on_sent=lambda: order.append("sent"), before_send=lambda: order.append("before")
    ):
        stream.write(b"POST / HTTP/1.1\r\n")
        stream.write(b"key=...")
    assert order == ["before", "write", "sent", "write"]
