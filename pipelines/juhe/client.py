"""The juhe ConLicByName transport: one POST per query, typed answers, typed failures.

Layering (docs/architecture.md#conventions): this module is transport + parsing only. Every
HTTP 200 JSON answer comes back as a `JuheResponse` whatever its `error_code` (classification is
data); anything that is not such an answer (timeout, reset, dropped connection, a non-200 status
such as a 502 HTML page) raises `JuheTransientError`. Retry policy lives in `fetcher.py`.

Hostile HTTP 200 answers (docs/architecture.md#hostile-answers) raise `JuheUnusableAnswerError`,
which carries the body to keep: a body that is not a JSON object (truncated, HTML served with 200),
a body over `max_body_bytes` (default 5 MiB; the body is streamed uncompressed — the request asks
for `Accept-Encoding: identity` — and reading stops at the cap, so a huge answer costs no more
memory than that; the first `max_body_bytes` are kept),
JSON nested too deep to decode (RecursionError, not ValueError), and error_code 0 whose
`result` is not an object or whose `result.items` is not a list. Everything finer (an item of
the wrong type, a `total` that is not a number, odd timestamps) is per item, in normalize.
A literal NUL character in the body (PostgreSQL text cannot hold one) is stored as its JSON
escape ``\u0000`` — the same meaning inside a JSON string; NUL is stripped from `reason`, `sign`
and every error detail.

The key travels only in the form body, never in the URL, and is redacted from every message.
Every request has an overall deadline besides httpx's per-operation timeouts, and tells its
caller the moment its bytes left (`on_sent`), for the shared rate limit (transport.py).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from pipelines.juhe.errors import (
    ErrorClass,
    JuheTransientError,
    JuheUnusableAnswerError,
    classify,
    parse_code,
)
from pipelines.juhe.transport import JuheTransport, exchange
from pipelines.settings import DEFAULT_MAX_BODY_BYTES, DEFAULT_REQUEST_DEADLINE_S, Secret

_DETAIL_CHARS = 120
# NUL and lone surrogates (a JSON "\ud800"): no database text column or UTF-8 encoder takes them.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True)
class JuheResponse:
    """One HTTP 200 JSON answer from juhe, before any parsing of `result`."""

    http_status: int
    error_code: int | None
    reason: str | None
    sign: str | None
    body_text: str
    payload: dict[str, Any] | None
    latency_ms: int
    error_class: ErrorClass

    @property
    def billable(self) -> bool:
        """juhe bills 查得 only: error_code 0."""
        return self.error_code == 0


DEFAULT_DEADLINE_S = DEFAULT_REQUEST_DEADLINE_S


class JuheClient:
    """A thread-safe juhe client: one pooled `httpx.Client`, a timeout on every network
    operation and an overall `deadline` (seconds) on every request."""

    def __init__(
        self,
        base_url: str,
        api_key: Secret,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        deadline: float = DEFAULT_DEADLINE_S,
        transport: httpx.BaseTransport | None = None,
        max_connections: int = 32,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self._url = base_url
        self._max_body_bytes = max_body_bytes
        self._key = Secret(api_key)
        self._deadline = deadline
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._http = httpx.Client(
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            transport=transport or JuheTransport(limits=limits),
            # identity: a compressed answer would be inflated before the size cap could stop it
            headers={"Accept": "application/json", "Accept-Encoding": "identity"},
            trust_env=False,
        )

    def __repr__(self) -> str:
        return f"JuheClient({self._url!r}, api_key=Secret('***'))"

    def query(
        self,
        name: str,
        on_sent: Callable[[], None] | None = None,
        before_send: Callable[[], None] | None = None,
    ) -> JuheResponse:
        """POST one query; a JuheResponse for any usable HTTP 200 JSON answer, else a JuheError.

        `before_send` and `on_sent` are called once, right before and right after the request's
        first bytes are written."""
        started = time.perf_counter()
        form = {"key": self._key.get_secret_value(), "name": name}
        try:
            with (
                exchange(self._deadline, on_sent, before_send),
                self._http.stream("POST", self._url, data=form) as reply,
            ):
                content, over_cap = _read_capped(reply, self._max_body_bytes)
        except httpx.TimeoutException as exc:
            raise JuheTransientError(detail=f"timeout ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise JuheTransientError(detail=self._redact(_transport_detail(exc))) from None
        latency_ms = round((time.perf_counter() - started) * 1000)
        # The key goes into no stored text, even when a server echoes the form back.
        body = self._redact(
            storable_body(content.decode(reply.encoding or "utf-8", errors="replace"))
        )
        return self._parse(reply.status_code, body, over_cap, latency_ms)

    def _parse(self, status: int, body: str, over_cap: bool, latency_ms: int) -> JuheResponse:
        if status != 200:
            raise JuheTransientError(
                http_status=status, detail=self._redact(f"HTTP {status}: {_snippet(body)}")
            )
        if over_cap:
            raise JuheUnusableAnswerError(
                None,
                f"body is over the cap of {self._max_body_bytes} bytes (its first "
                f"{self._max_body_bytes} are kept)",
                body_text=body,
                latency_ms=latency_ms,
            )
        try:
            payload = _json_object(body)
        except RecursionError:
            raise JuheUnusableAnswerError(
                None, "JSON nested too deep to decode", body_text=body, latency_ms=latency_ms
            ) from None
        if payload is None:
            raise JuheUnusableAnswerError(
                None,
                f"body is not a JSON object: {_snippet(body)}",
                body_text=body,
                latency_ms=latency_ms,
            )
        code = parse_code(payload.get("error_code"))
        reason = _text_or_none(payload.get("reason"))
        sign = _text_or_none(payload.get("sign"))
        if code == 0 and (problem := shape_problem(payload)) is not None:
            raise JuheUnusableAnswerError(
                code, problem, body_text=body, latency_ms=latency_ms, reason=reason, sign=sign
            )
        return JuheResponse(
            http_status=200,
            error_code=code,
            reason=reason,
            sign=sign,
            body_text=body,
            payload=payload,
            latency_ms=latency_ms,
            error_class=classify(code),
        )

    def _redact(self, text: str) -> str:
        key = self._key.get_secret_value()
        return text.replace(key, "***") if key else text

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> JuheClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _read_capped(reply: httpx.Response, cap: int) -> tuple[bytes, bool]:
    """At most `cap` bytes of the body, and whether there was more (reading stops there)."""
    chunks, size = [], 0
    for chunk in reply.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            return b"".join(chunks)[:cap], True
    return b"".join(chunks), False


def _transport_detail(exc: httpx.TransportError) -> str:
    """The exception's kind and message; httpx messages name the host, never the form body."""
    message = str(exc).strip()
    return f"{type(exc).__name__}: {message[:_DETAIL_CHARS]}" if message else type(exc).__name__


def _json_object(body: str) -> dict[str, Any] | None:
    try:
        value = json.loads(body, strict=False)  # control characters inside strings are data
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def storable_body(body: str) -> str:
    """The body as raw_responses stores it: a literal NUL becomes its JSON escape."""
    return body.replace("\x00", "\\u0000") if "\x00" in body else body


def shape_problem(payload: dict[str, Any]) -> str | None:
    """Why an error_code 0 answer cannot be used at all (None when its shape is usable)."""
    result = payload.get("result")
    if not isinstance(result, dict):
        return f"result is {type(result).__name__}, not an object"
    items = result.get("items")
    if not isinstance(items, list):
        return f"result.items is {type(items).__name__}, not a list"
    return None


def _snippet(body: str) -> str:
    flat = " ".join(body.replace("\x00", "").split())
    return flat[:_DETAIL_CHARS] + ("…" if len(flat) > _DETAIL_CHARS else "")


def _text_or_none(value: object) -> str | None:
    """`reason`/`sign` as text without NUL; a container (never expected, maybe nested without
    end) is named by its type, not rendered."""
    if value is None:
        return None
    if isinstance(value, dict | list):
        return f"<{type(value).__name__}>"
    text = value if isinstance(value, str) else str(value)
    return _UNSTORABLE.sub("", text)
