"""The juhe ConLicByName transport: one POST per query, typed answers, typed failures.

Layering (STYLE.md): this module is transport + parsing only. Every HTTP 200 JSON answer comes
back as a `JuheResponse` whatever its `error_code` (classification is data); anything that is not
such an answer (timeout, reset, dropped connection, non-200, HTML, truncated JSON) raises
`JuheTransientError`. Retry policy lives in `fetcher.py`.

The key travels only in the form body, never in the URL, and is redacted from every message.
Every request has an overall deadline besides httpx's per-operation timeouts, and tells its
caller the moment its bytes left (`on_sent`), for the shared rate limit (transport.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from pipelines.juhe.errors import ErrorClass, JuheTransientError, classify, parse_code
from pipelines.juhe.transport import JuheTransport, exchange
from pipelines.settings import Secret

_DETAIL_CHARS = 120


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


DEFAULT_DEADLINE_S = 30.0


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
    ) -> None:
        self._url = base_url
        self._key = Secret(api_key)
        self._deadline = deadline
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._http = httpx.Client(
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            transport=transport or JuheTransport(limits=limits),
            headers={"Accept": "application/json"},
            trust_env=False,
        )

    def __repr__(self) -> str:
        return f"JuheClient({self._url!r}, api_key=Secret('***'))"

    def query(self, name: str, on_sent: Callable[[], None] | None = None) -> JuheResponse:
        """POST one query; a JuheResponse for any HTTP 200 JSON answer, else JuheTransientError.

        `on_sent` is called once, right after the request's first bytes were written."""
        started = time.perf_counter()
        try:
            with exchange(self._deadline, on_sent):
                reply = self._http.post(
                    self._url, data={"key": self._key.get_secret_value(), "name": name}
                )
        except httpx.TimeoutException as exc:
            raise JuheTransientError(detail=f"timeout ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise JuheTransientError(detail=self._redact(_transport_detail(exc))) from None
        latency_ms = round((time.perf_counter() - started) * 1000)
        return self._parse(reply, latency_ms)

    def _parse(self, reply: httpx.Response, latency_ms: int) -> JuheResponse:
        body = reply.text
        if reply.status_code != 200:
            raise JuheTransientError(
                http_status=reply.status_code,
                detail=self._redact(f"HTTP {reply.status_code}: {_snippet(body)}"),
            )
        payload = _json_object(body)
        if payload is None:
            raise JuheTransientError(
                http_status=200, detail=self._redact(f"body is not a JSON object: {_snippet(body)}")
            )
        code = parse_code(payload.get("error_code"))
        return JuheResponse(
            http_status=200,
            error_code=code,
            reason=_text_or_none(payload.get("reason")),
            sign=_text_or_none(payload.get("sign")),
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


def _transport_detail(exc: httpx.TransportError) -> str:
    """The exception's kind and message; httpx messages name the host, never the form body."""
    message = str(exc).strip()
    return f"{type(exc).__name__}: {message[:_DETAIL_CHARS]}" if message else type(exc).__name__


def _json_object(body: str) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _snippet(body: str) -> str:
    flat = " ".join(body.split())
    return flat[:_DETAIL_CHARS] + ("…" if len(flat) > _DETAIL_CHARS else "")


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)
