"""The juhe sandbox as a real HTTP server (standard library only).

`SandboxServer` serves `ConLicByName` on `/enterprise/App/ConLicByName/query` (GET query string or
POST form) with keep-alive HTTP/1.1, plus admin endpoints under `/_sandbox/`.

Arrival, as juhe's edge would see it: the kernel's receive time of the request's first bytes
(SO_TIMESTAMPNS, so the sandbox's own thread scheduling on a busy host never shifts it), plus a
simulated one-way network delay (`net_delay_ms` median, `net_delay_p99_ms` 99th percentile,
lognormal, drawn independently per request — the pessimistic model, in which requests overtake
each other). The handler waits until that arrival before it answers. Per request, in
order: wrong key → 10001; over the per-key QPS window → 10011 at once (a counted violation);
maintenance → 10020; daily quota used up → 10012; then a fault may be drawn; then the answer
(260201/260202 for bad input, else the dataset's body for the configured day). Every answer but
10011 waits the configured latency (lognormal around the median) first.

The API key is never echoed, logged or shown in stats, config dumps or reprs.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import json
import logging
import math
import random
import re
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

from juhe_sandbox import hostile
from juhe_sandbox.dataset import Dataset
from juhe_sandbox.render import error_body

log = logging.getLogger("juhe_sandbox")

ENDPOINT = "/enterprise/App/ConLicByName/query"
# Transport faults, then the hostile HTTP 200 answers built by juhe_sandbox/hostile.py.
FAULT_KINDS = ("260200", "10014", "http502", "truncated", "drop", "slow", "partial", *hostile.KINDS)
RUNTIME_FIELDS = frozenset(
    {
        "day",
        "latency_ms",
        "latency_sigma",
        "qps_limit",
        "daily_quota",
        "maintenance",
        "faults",
        "fault_seed",
        "slow_seconds",
        "net_delay_ms",
        "net_delay_p99_ms",
    }
)
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; absent from Python's constants
_Z99 = 2.3263478740408408  # the standard normal's 99th percentile
MAX_NAME_LENGTH = 200
BAD_GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


@dataclass
class SandboxConfig:
    """How the sandbox behaves; all fields optional. `faults` maps a kind of FAULT_KINDS to its
    probability per accepted request (the probabilities must add up to at most 1).
    "partial" (an addition) answers with `total` larger than the items returned."""

    api_key: str = field(default="sandbox-key", repr=False)
    seed: int = 7
    size: int = 200
    day: int = 0
    latency_ms: float = 0.0
    latency_sigma: float = 0.35
    qps_limit: float | None = None
    daily_quota: int | None = None
    maintenance: bool = False
    faults: dict[str, float] = field(default_factory=dict)
    fault_seed: int = 1
    slow_seconds: float = 5.0
    noise_garbage: bool = False
    net_delay_ms: float = 0.0
    net_delay_p99_ms: float | None = None

    def __post_init__(self) -> None:
        if self.net_delay_ms < 0 or (
            self.net_delay_p99_ms is not None and self.net_delay_p99_ms < self.net_delay_ms
        ):
            raise ValueError("net_delay_ms must be >= 0 and net_delay_p99_ms >= net_delay_ms")
        unknown = set(self.faults) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
        if any(p < 0 for p in self.faults.values()) or sum(self.faults.values()) > 1 + 1e-9:
            raise ValueError("fault probabilities must be >= 0 and add up to at most 1")
        if self.day < 0:
            raise ValueError("day must be >= 0")

    def public(self) -> dict[str, Any]:
        """The settings without the key, for stats and the admin endpoint."""
        values = dataclasses.asdict(self)
        del values["api_key"]
        return values

    def net_delay(self, rng: random.Random) -> float:
        """One request's one-way network delay in seconds (lognormal, median and p99 given)."""
        if self.net_delay_ms <= 0:
            return 0.0
        p99 = self.net_delay_p99_ms or self.net_delay_ms
        sigma = math.log(p99 / self.net_delay_ms) / _Z99
        return self.net_delay_ms / 1000 * rng.lognormvariate(0, sigma)


@dataclass(frozen=True)
class Reply:
    """What the handler sends: after `delay` seconds, a response or (drop) nothing."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json;charset=utf-8"
    delay: float = 0.0
    drop: bool = False


@lru_cache(maxsize=4)
def shared_dataset(seed: int, size: int, noise_garbage: bool) -> Dataset:
    """Datasets are pure, so servers with the same settings share one."""
    return Dataset(seed, size, noise_garbage=noise_garbage)


class Meter:
    """Counters, the sliding QPS window, the quota and the fault draws, behind one lock.

    The window holds the sorted arrival times of recently accepted requests. Handlers may admit
    arrivals slightly out of order (each waits out its own network delay), so a request is
    accepted only if every 1-second window containing its arrival stays within the limit.
    """

    def __init__(self, fault_seed: int) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0  # a gauge: requests being answered right now; never reset
        self.reset(fault_seed)

    def reset(self, fault_seed: int) -> None:
        with self._lock:
            self._window: list[float] = []
            self._rng = random.Random(fault_seed)
            self.net_rng = random.Random(fault_seed + 1)
            self.requests = self.violations = self.max_in_window = 0
            self.billable = self.quota_used = 0
            self.max_in_flight = self.in_flight
            self.by_error_code: Counter[int] = Counter()
            self.faults: Counter[str] = Counter()
            self.per_query: Counter[str] = Counter()
            self.first_request_at: float | None = None
            self.last_request_at: float | None = None

    def arrive(self, now: float, query: str | None) -> None:
        with self._lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if query is not None:
                self.per_query[query] += 1
            if self.first_request_at is None:
                self.first_request_at = now
            self.last_request_at = now

    def admit(self, now: float, qps_limit: float | None) -> bool:
        """Strict sliding window: accept `now` unless some 1.0 s window holding it would then
        hold more than `qps_limit` accepted arrivals."""
        with self._lock:
            window = self._window
            if window and window[0] < window[-1] - 4.0:
                del window[: bisect.bisect_left(window, window[-1] - 2.0)]
            busiest = _busiest_window(window, now) + 1
            if qps_limit is not None and busiest > qps_limit:
                self.violations += 1
                return False
            bisect.insort(window, now)
            self.max_in_window = max(self.max_in_window, busiest)
            return True

    def take_quota(self, quota: int | None) -> bool:
        with self._lock:
            if quota is not None and self.quota_used >= quota:
                return False
            self.quota_used += 1
            return True

    def draw(self, faults: dict[str, float], config: SandboxConfig) -> tuple[str | None, float]:
        """A fault kind (or None) and the latency in seconds for one request."""
        with self._lock:
            point, fault = self._rng.random(), None
            for kind in FAULT_KINDS:
                point -= faults.get(kind, 0.0)
                if point < 0:
                    fault = kind
                    break
            delay = 0.0
            if config.latency_ms > 0:
                delay = config.latency_ms / 1000 * self._rng.lognormvariate(0, config.latency_sigma)
            return fault, delay

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def record(self, code: int | None, fault: str | None) -> None:
        """Count an answer before it is sent, so a client never sees stats lag behind."""
        with self._lock:
            if fault is not None:
                self.faults[fault] += 1
            if code is not None:
                self.by_error_code[code] += 1
                self.billable += code == 0

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "by_error_code": dict(self.by_error_code),
                "violations": self.violations,
                "max_in_window": self.max_in_window,
                "faults": dict(self.faults),
                "per_query": dict(self.per_query),
                "billable": self.billable,
                "quota_used": self.quota_used,
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "first_request_at": self.first_request_at,
                "last_request_at": self.last_request_at,
            }


def _busiest_window(arrivals: list[float], t: float) -> int:
    """The most sorted `arrivals` in one window [a, a + 1 s) that also holds `t`."""
    busiest = 0
    first = bisect.bisect_right(arrivals, t - 1.0)
    for start in [t, *arrivals[first : bisect.bisect_right(arrivals, t)]]:
        busiest = max(
            busiest,
            bisect.bisect_left(arrivals, start + 1.0) - bisect.bisect_left(arrivals, start),
        )
    return busiest


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


class SandboxServer:
    """A started-on-demand local juhe endpoint; usable as a context manager."""

    def __init__(
        self, config: SandboxConfig | None = None, port: int = 0, host: str = "127.0.0.1"
    ) -> None:
        self._config = config or SandboxConfig()
        self._lock = threading.Lock()
        self.dataset = shared_dataset(
            self._config.seed, self._config.size, self._config.noise_garbage
        )
        self.meter = Meter(self._config.fault_seed)
        self._host, self._port = host, port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> SandboxServer:
        self.stopping.clear()
        self._httpd = _HTTPServer((self._host, self._port), _Handler, self)
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"juhe-sandbox-{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers and close kept-alive connections."""
        if self._httpd is None:
            return
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self._host in ("", "0.0.0.0") else self._host
        return f"http://{host}:{self._port}"

    @property
    def url(self) -> str:
        return self.base_url + ENDPOINT

    @property
    def config(self) -> SandboxConfig:
        return self._config

    # --- control ----------------------------------------------------------------------------

    def configure(self, **changes: Any) -> SandboxConfig:
        """Change day, faults, quota, latency, QPS or maintenance while serving."""
        fixed = set(changes) - RUNTIME_FIELDS
        if fixed:
            raise ValueError(f"cannot change {sorted(fixed)} at run time")
        with self._lock:
            self._config = dataclasses.replace(self._config, **changes)
            if "fault_seed" in changes:
                self.meter.reset(self._config.fault_seed)
            return self._config

    def stats(self) -> dict[str, Any]:
        return self.meter.snapshot()

    def reset_stats(self) -> None:
        """Zero the counters, the QPS window and the quota used; restart the fault sequence."""
        self.meter.reset(self._config.fault_seed)

    # --- the API ----------------------------------------------------------------------------

    def answer(
        self, params: dict[str, str], arrived: float | None = None
    ) -> tuple[Reply, int | None, str | None]:
        """The reply to one API request (arrived at monotonic time `arrived`), with the error
        code and fault to record."""
        config = self._config
        now = time.monotonic() if arrived is None else arrived
        if params.get("key") != config.api_key:
            return self._error(10001, self.meter.draw({}, config)[1])
        if not self.meter.admit(now, config.qps_limit):
            return self._error(10011, 0.0)
        fault, delay = self.meter.draw(config.faults, config)
        if config.maintenance:
            return self._error(10020, delay)
        if not self.meter.take_quota(config.daily_quota):
            return self._error(10012, delay)
        if fault in ("260200", "10014"):
            return (Reply(body=_json(error_body(int(fault))), delay=delay), int(fault), fault)
        if fault == "http502":
            return Reply(502, BAD_GATEWAY_HTML, "text/html", delay=delay), None, fault
        if fault == "drop":
            return Reply(delay=delay, drop=True), None, fault
        body = self._body(params.get("name"), config)

        if fault in hostile.KINDS:
            hostile_data, hostile_code = hostile.render(fault, body)
            return Reply(body=hostile_data, delay=delay), hostile_code, fault
        if fault == "partial" and body.get("result"):
            body["result"]["items"] = body["result"]["items"][:-1]
        code = int(body["error_code"])
        data = _json(body)
        if fault == "truncated":
            return Reply(body=data[: len(data) // 2], delay=delay), None, fault
        if fault == "slow":
            delay += config.slow_seconds
        return Reply(body=data, delay=delay), code, fault

    def _body(self, name: str | None, config: SandboxConfig) -> dict[str, Any]:
        if name is None:
            return error_body(260201)
        if not name.strip() or len(name) > MAX_NAME_LENGTH:
            return error_body(260202)
        return self.dataset.response(name, config.day)

    @staticmethod
    def _error(code: int, delay: float) -> tuple[Reply, int, None]:
        return Reply(body=_json(error_body(code)), delay=delay), code, None

    def redact(self, text: str) -> str:
        """Remove the key (plain or URL-encoded) and any query string from a log message."""
        key = self._config.api_key
        for form in {key, quote(key, safe=""), quote_plus(key)} - {""}:
            text = text.replace(form, "***")
        return re.sub(r"\?\S*", "?…", text)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 512
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        sandbox: SandboxServer,
    ) -> None:
        self.sandbox = sandbox
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)
        # Accepted connections inherit the option; set here, it also keeps the kernel's
        # receive timestamps switched on for as long as the server listens (Linux turns them on
        # lazily, and a connection's first bytes could otherwise arrive unstamped).
        with contextlib.suppress(OSError):
            self.socket.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Client disconnects are normal here; log anything else without the request."""
        log.debug("sandbox handler error", exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    sys_version = ""
    timeout = 60  # idle keep-alive connections are closed after a minute
    disable_nagle_algorithm = True  # headers and body leave at once (no delayed-ACK stalls)
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)

    def handle_one_request(self) -> None:
        # Wait for the next request's first bytes and read when the kernel received them: the
        # moment they reached this host, whatever the delay before this thread ran. The
        # simulated network delay comes on top; the handler waits until that arrival.
        sandbox = self.server.sandbox
        received = _kernel_receive_time(self.connection)
        if received is None:
            self.close_connection = True
            return
        self.arrived = received + sandbox.config.net_delay(sandbox.meter.net_rng)
        sandbox.stopping.wait(max(0.0, self.arrived - time.monotonic()))
        super().handle_one_request()

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        if split.path == "/_sandbox/stats":
            self._send_json(200, self.server.sandbox.stats())
        elif split.path == "/_sandbox/config":
            self._send_json(200, self.server.sandbox.config.public())
        else:
            self._api(split.path, _params(split.query))

    def do_POST(self) -> None:
        split = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if split.path == "/_sandbox/config":
            self._admin_config(raw)
        elif split.path == "/_sandbox/reset":
            self.server.sandbox.reset_stats()
            self._send_json(200, self.server.sandbox.stats())
        else:
            params = _params(split.query) | _params(raw.decode("utf-8", "replace"))
            self._api(split.path, params)

    def _admin_config(self, raw: bytes) -> None:
        try:
            config = self.server.sandbox.configure(**json.loads(raw or b"{}"))
        except (ValueError, TypeError) as exc:
            self._send_json(400, {"error": str(exc)})
            return
        self._send_json(200, config.public())

    def _api(self, path: str, params: dict[str, str]) -> None:
        if path not in (ENDPOINT, ENDPOINT + ".php"):
            self._send_json(404, {"error": "not found"})
            return
        sandbox = self.server.sandbox
        sandbox.meter.arrive(self.arrived, params.get("name"))
        try:
            reply, code, fault = sandbox.answer(params, self.arrived)
            if reply.delay > 0:
                sandbox.stopping.wait(reply.delay)
            sandbox.meter.record(code, fault)
            if reply.drop:
                self.close_connection = True
            else:
                self._send(reply.status, reply.body, reply.content_type)
        finally:
            sandbox.meter.leave()

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, _json(body), "application/json;charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s", self.server.sandbox.redact(format % args))


def _kernel_receive_time(connection: socket.socket) -> float | None:
    """Block until bytes are readable; the monotonic time the kernel received them (now, where
    the kernel gives no timestamp); None when the peer closed or the idle timeout passed."""
    try:
        data, ancillary, _, _ = connection.recvmsg(1, socket.CMSG_SPACE(16), socket.MSG_PEEK)
    except (OSError, TimeoutError):
        return None
    if not data:
        return None
    now_mono, now_wall = time.monotonic(), time.time()
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(payload) >= 16:
            seconds, nanoseconds = struct.unpack("qq", payload[:16])
            if seconds > 0:
                return now_mono - max(0.0, now_wall - (seconds + nanoseconds / 1e9))
    return now_mono


def _params(text: str) -> dict[str, str]:
    """Form or query parameters, the first value of each (blank values kept)."""
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
