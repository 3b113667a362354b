"""The HTTP transport under `JuheClient`: an overall deadline per request, and the moment it left.

httpx's timeouts bound each network operation, not a request: a server that trickles a byte every
few seconds holds a worker forever. And the shared rate limit must record when a request really
leaves (its bytes handed to the socket), not when a slot was granted: on a loaded host the two
are tens of milliseconds apart. Both live at the level of the network stream, which httpcore (the
engine under httpx) lets a caller supply as a `NetworkBackend`:

* every read, write and connect gets `min(its own timeout, time left before the deadline)`, and
  raises httpcore's timeout once the deadline has passed (httpx maps it to `httpx.ReadTimeout` …);
* the first write of a request calls its `before_send` callback just before and its `on_sent`
  callback just after the bytes were handed to the kernel, so a time read in `on_sent` is never
  earlier than the real send (and the rate limit can exchange a slot that waited too long).

The deadline and callback of the request in progress are thread-local: httpx's sync client
handles a request entirely in the calling thread.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx


@dataclass
class _Exchange:
    deadline: float  # time.monotonic()
    before_send: Callable[[], None] | None
    on_sent: Callable[[], None] | None
    sent: bool = False


_current = threading.local()


@contextmanager
def exchange(
    deadline_s: float,
    on_sent: Callable[[], None] | None = None,
    before_send: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Bound the request made inside the block to `deadline_s` seconds in all; call
    `before_send` once right before and `on_sent` once right after its first bytes are written."""
    _current.value = _Exchange(time.monotonic() + deadline_s, before_send, on_sent)
    try:
        yield
    finally:
        _current.value = None


def _exchange() -> _Exchange | None:
    return getattr(_current, "value", None)


def _bounded(timeout: float | None, expired: type[Exception]) -> float | None:
    """The operation's timeout, shortened to what is left of the request's deadline."""
    current = _exchange()
    if current is None:
        return timeout
    left = current.deadline - time.monotonic()
    if left <= 0:
        raise expired("the request's overall deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        current = _exchange()
        first = current is not None and not current.sent
        if first and current is not None and current.before_send is not None:
            current.before_send()
        self._stream.write(buffer, _bounded(timeout, httpcore.WriteTimeout))
        if first and current is not None:
            current.sent = True
            if current.on_sent is not None:
                current.on_sent()

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        tls = self._stream.start_tls(
            ssl_context, server_hostname, _bounded(timeout, httpcore.ConnectTimeout)
        )
        return _DeadlineStream(tls)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(
            host,
            port,
            _bounded(timeout, httpcore.ConnectTimeout),
            local_address,
            socket_options,
        )
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class JuheTransport(httpx.HTTPTransport):
    """httpx's own HTTP/1.1 transport over a pool whose network streams keep the deadline.

    httpx builds its httpcore pool in `__init__` without a way to pass a network backend, so the
    pool is built again here with the same limits (httpx is pinned below 0.29; the transport
    tests fail if its layout changes). No proxy: the key never goes to one taken from the
    environment.
    """

    def __init__(self, *, limits: httpx.Limits, verify: bool = True) -> None:
        super().__init__(limits=limits, verify=verify, trust_env=False)
        self._pool.close()
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=_DeadlineBackend(),
        )
