"""The call ledger and the landing of raw bodies (tables `api_calls`, `raw_responses`:
docs/architecture.md#tables).

Every HTTP attempt becomes an `api_calls` row, committed as it happens. A body juhe returned
(error_code 0 or 260204) lands together with its ledger row and the company's new fetch state in
one transaction, so a crash loses at most the calls in flight and a re-run never fetches a
company whose answer landed.

An unusable HTTP 200 answer (`JuheUnusableAnswerError`, docs/architecture.md#hostile-answers) lands
the same way — ledger row (billable when its error_code is 0, `detail` says what is wrong), raw body
(as text; normalize reads it as an `invalid` response, which changes nothing) — but the company
becomes `failed` with one more consecutive failure, so the normal failure backoff retries it in a
later run, never in this one. Writes from many threads are serialised per engine on SQLite (one
writer at a time; other processes wait on the busy timeout); PostgreSQL takes them concurrently.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import weakref
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from models.tables import ApiCall, Company, RawResponse
from pipelines.juhe.client import JuheResponse
from pipelines.juhe.errors import UNUSABLE_DETAIL_PREFIX, ErrorClass, JuheUnusableAnswerError

_SQLITE_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()

_LANDED_STATUS = {ErrorClass.OK: "ok", ErrorClass.NOT_FOUND: "not_found"}


@dataclass(frozen=True)
class CallRecord:
    """One HTTP attempt, as the ledger stores it."""

    company_id: int | None
    called_at: dt.datetime
    attempt: int
    outcome: ErrorClass
    run_id: str | None
    http_status: int | None = None
    error_code: int | None = None
    latency_ms: int | None = None
    detail: str | None = None

    @classmethod
    def of_response(
        cls,
        company_id: int,
        called_at: dt.datetime,
        attempt: int,
        response: JuheResponse,
        run_id: str | None,
    ) -> CallRecord:
        return cls(
            company_id=company_id,
            called_at=called_at,
            attempt=attempt,
            outcome=response.error_class,
            run_id=run_id,
            http_status=response.http_status,
            error_code=response.error_code,
            latency_ms=response.latency_ms,
            detail=None if response.error_class is ErrorClass.OK else _juhe_reason(response),
        )

    @classmethod
    def of_unusable(
        cls,
        company_id: int,
        called_at: dt.datetime,
        attempt: int,
        error: JuheUnusableAnswerError,
        run_id: str | None,
    ) -> CallRecord:
        return cls(
            company_id=company_id,
            called_at=called_at,
            attempt=attempt,
            outcome=error.error_class,
            run_id=run_id,
            http_status=200,
            error_code=error.code,
            latency_ms=error.latency_ms,
            detail=error.detail,
        )

    @property
    def billable(self) -> bool:
        """juhe bills 查得 only (error_code 0)."""
        return self.error_code == 0

    def values(self) -> dict[str, object]:
        return {
            "company_id": self.company_id,
            "called_at": self.called_at,
            "attempt": self.attempt,
            "http_status": self.http_status,
            "error_code": self.error_code,
            "outcome": self.outcome.value,
            "detail": self.detail,
            "latency_ms": self.latency_ms,
            "billable": self.billable,
            "run_id": self.run_id,
        }


def _juhe_reason(response: JuheResponse) -> str | None:
    """juhe's `reason` as the ledger's detail; one that reads like the fetch's own "unusable
    answer" mark (which normalize trusts) is quoted so it cannot pose as one."""
    reason = response.reason
    if reason is not None and reason.startswith(UNUSABLE_DETAIL_PREFIX):
        return f"juhe: {reason}"
    return reason


def write_lock(engine: Engine) -> AbstractContextManager[object]:
    """One writer at a time per SQLite engine; no serialisation on PostgreSQL."""
    if engine.dialect.name != "sqlite":
        return nullcontext()
    with _LOCKS_GUARD:
        return _SQLITE_WRITE_LOCKS.setdefault(engine, threading.Lock())


def record_call(conn: Connection, call: CallRecord) -> int:
    """Insert one api_calls row; its id."""
    result = conn.execute(sa.insert(ApiCall).values(**call.values()).returning(ApiCall.id))
    return int(result.scalar_one())


def log_call(engine: Engine, call: CallRecord) -> int:
    """Record an attempt that landed no body, committed at once."""
    with write_lock(engine), engine.begin() as conn:
        return record_call(conn, call)


def land_response(
    engine: Engine,
    company_id: int,
    query: str,
    response: JuheResponse,
    call: CallRecord,
    run_id: str | None,
    *,
    fetched_at: dt.datetime | None = None,
) -> int:
    """Ledger row + raw body + the company's new fetch state, in one transaction; the raw id."""
    fetched_at = fetched_at or dt.datetime.now(dt.UTC)
    state = {
        "fetch_status": _LANDED_STATUS[response.error_class],
        "last_fetched_at": fetched_at,
        "last_attempt_at": fetched_at,
        "last_error_code": response.error_code,
        "consecutive_failures": 0,
    }
    body = (response.error_code, response.reason, response.sign, response.body_text)
    return _land(engine, company_id, query, call, run_id, fetched_at, body, state)


def land_unusable(
    engine: Engine,
    company_id: int,
    query: str,
    error: JuheUnusableAnswerError,
    call: CallRecord,
    run_id: str | None,
    *,
    fetched_at: dt.datetime | None = None,
) -> int:
    """Ledger row + raw body of an unusable answer + the company `failed`, in one transaction."""
    fetched_at = fetched_at or dt.datetime.now(dt.UTC)
    state = {
        "fetch_status": "failed",
        "last_attempt_at": fetched_at,
        "last_error_code": error.code,
        "consecutive_failures": Company.consecutive_failures + 1,
    }
    body = (error.code, error.reason, error.sign, error.body_text)
    return _land(engine, company_id, query, call, run_id, fetched_at, body, state)


def _land(
    engine: Engine,
    company_id: int,
    query: str,
    call: CallRecord,
    run_id: str | None,
    fetched_at: dt.datetime,
    body: tuple[int | None, str | None, str | None, str],
    state: dict[str, object],
) -> int:
    """The ledger row, the raw body (error_code, reason, sign, text) and the company's new
    state, in one transaction; the raw id."""
    error_code, reason, sign, text = body
    with write_lock(engine), engine.begin() as conn:
        call_id = record_call(conn, call)
        raw_id = _insert_raw(
            conn,
            company_id,
            call_id,
            query,
            fetched_at,
            run_id,
            error_code=error_code,
            reason=reason,
            sign=sign,
            body=text,
        )
        conn.execute(sa.update(Company).where(Company.id == company_id).values(**state))
    return raw_id


def _insert_raw(
    conn: Connection,
    company_id: int,
    call_id: int,
    query: str,
    fetched_at: dt.datetime,
    run_id: str | None,
    *,
    error_code: int | None,
    reason: str | None,
    sign: str | None,
    body: str,
) -> int:
    raw_id = conn.execute(
        sa.insert(RawResponse)
        .returning(RawResponse.id)
        .values(
            company_id=company_id,
            api_call_id=call_id,
            query=query,
            fetched_at=fetched_at,
            http_status=200,
            error_code=error_code,
            reason=reason,
            sign=sign,
            body=body,
            body_sha256=hashlib.sha256(body.encode("utf-8")).hexdigest(),
            run_id=run_id,
        )
    ).scalar_one()
    return int(raw_id)


def mark_failed(
    engine: Engine,
    company_id: int,
    *,
    error_code: int | None,
    invalid: bool,
    attempted_at: dt.datetime,
) -> None:
    """End of a company's attempts without a body: 'invalid', or 'failed' with one more failure."""
    values: dict[str, object] = {
        "fetch_status": "invalid" if invalid else "failed",
        "last_attempt_at": attempted_at,
        "last_error_code": error_code,
    }
    if not invalid:
        values["consecutive_failures"] = Company.consecutive_failures + 1
    with write_lock(engine), engine.begin() as conn:
        conn.execute(sa.update(Company).where(Company.id == company_id).values(**values))
