"""Fetch due companies from juhe: requests in flight, one shared rate limit, bounded retries.

Each worker pulls companies from a queue; every HTTP attempt first takes a slot from the shared
limiter, is written to the ledger as it ends, and a body juhe returned lands at once with the
company's new state (ledger.py). Per class of answer (errors.py, and the table in
docs/architecture.md#error-codes-and-actions):

* ok / not_found → landed; invalid → `fetch_status='invalid'`, not retried in the run (due
  again a refresh interval later, due.py);
* transient → retried with exponential backoff and full jitter, at most `max_attempts` transient
  failures per company per run, then `fetch_status='failed'` (backoff in due.py);
* throttled (10011) → the limiter pauses this process, then retried, up to
  `max_throttled_attempts`; a company that runs out stays due without a failure;
* unusable (a hostile HTTP 200 answer: `JuheUnusableAnswerError`,
  docs/architecture.md#hostile-answers) → its ledger row and raw body land, the company is `failed`
  for this run (failure backoff in due.py) and is NOT retried in this run: an error_code 0 answer
  may have been billed. Only that company is affected; the run goes on;
* quota, maintenance, fatal → no new request starts (those in flight finish and land); the rest
  stay due. The report says why; `raise_for_stop` turns a fatal stop into `JuheFatalError`.

`daily_budget` caps HTTP attempts per Asia/Shanghai day across every run and process: each
attempt reserves a unit of the day's counter first (claims.py). Before its first request for a
company a run claims it; a company another run holds, or attempted since this run started, is
skipped (`claimed_elsewhere`), so overlapping runs never buy the same answer twice.
"""

from __future__ import annotations

import datetime as dt
import math
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import tenacity
from sqlalchemy.engine import Engine

from pipelines.juhe.claims import claim, release, reserve_call, return_call
from pipelines.juhe.client import JuheClient, JuheResponse
from pipelines.juhe.due import DueCompany
from pipelines.juhe.errors import (
    ErrorClass,
    JuheError,
    JuheFatalError,
    JuheInvalidQueryError,
    JuheMaintenanceError,
    JuheQuotaError,
    JuheThrottledError,
    JuheTransientError,
    JuheUnusableAnswerError,
    describe,
    error_for,
)
from pipelines.juhe.ledger import (
    CallRecord,
    land_response,
    land_unusable,
    log_call,
    mark_failed,
)
from pipelines.juhe.ratelimit import RateLimiter, Slot

PROGRESS_EVERY_S = 2.0
THROTTLE_PAUSE_S = 0.5
_SLEEP_SLICE_S = 0.25
_EXAMPLES = 5
_STOP_KINDS: dict[type[JuheError], str] = {
    JuheQuotaError: "quota",
    JuheMaintenanceError: "maintenance",
    JuheFatalError: "fatal",
}


MAX_CONCURRENCY = 64


def default_concurrency(qps: float, median_latency_s: float = 0.3) -> int:
    """Requests in flight that hide latency: twice Little's law (lognormal tail) plus two,
    capped so a very high JUHE_QPS does not start hundreds of threads and connections."""
    return min(MAX_CONCURRENCY, max(4, math.ceil(qps * median_latency_s * 2) + 2))


@dataclass(frozen=True)
class FetchProgress:
    done: int
    total: int
    calls: int
    elapsed: float
    rate: float
    eta_seconds: float | None

    def describe(self) -> str:
        eta = "" if self.eta_seconds is None else f", about {self.eta_seconds:.0f} s left"
        return (
            f"{self.done}/{self.total} companies done, {self.calls} calls, "
            f"{self.rate:.1f} calls/s{eta}"
        )


@dataclass
class FetchReport:
    total: int
    attempted: int = 0
    landed_ok: int = 0
    not_found: int = 0
    invalid: int = 0
    failed: int = 0
    calls: int = 0
    billable_calls: int = 0
    estimated_cost: float = 0.0
    claimed_elsewhere: int = 0  # another run held the company, or attempted it meanwhile
    stopped_by: str | None = None  # None | quota | maintenance | fatal | budget | cancelled
    stop_code: int | None = None
    stop_message: str | None = None
    remaining: int = 0
    failures_by_code: dict[str, list[str]] = field(default_factory=dict)
    calls_by_outcome: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    achieved_rate: float = 0.0


def raise_for_stop(report: FetchReport) -> None:
    """Raise JuheFatalError (message naming the cause and JUHE_API_KEY) after a fatal stop."""
    if report.stopped_by == "fatal":
        raise JuheFatalError(
            report.stop_code,
            ErrorClass.FATAL,
            200,
            f"the fetch stopped; {report.remaining} companies remain due",
        )


def _throttled(state: tenacity.RetryCallState) -> bool:
    outcome = state.outcome
    return outcome is not None and isinstance(outcome.exception(), JuheThrottledError)


class _Halted(Exception):
    """No new request may start (stop flag, budget or cancellation)."""


@dataclass
class _Attempts:
    """One company's attempts in this run."""

    number: int = 0
    transient: int = 0
    throttled: int = 0
    last_code: int | None = None
    last_status: int | None = None
    called: bool = False
    unusable: bool = False

    def note(self, error: JuheError) -> None:
        self.last_code, self.last_status = error.code, error.http_status
        self.unusable = isinstance(error, JuheUnusableAnswerError)
        if isinstance(error, JuheThrottledError):
            self.throttled += 1
        elif isinstance(error, JuheTransientError):
            self.transient += 1

    def failure_key(self) -> str:
        if self.unusable:
            return "unusable"
        if self.last_code is not None:
            return str(self.last_code)
        if self.last_status not in (None, 200):
            return f"http_{self.last_status}"
        return ErrorClass.TRANSIENT.value


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    max_throttled_attempts: int = 16
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    throttle_pause: float = THROTTLE_PAUSE_S

    def backoff(self, transient_failures: int) -> float:
        """Full jitter: uniform in [0, min(cap, base × 2^(n-1))]."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** max(transient_failures - 1, 0))
        return random.uniform(0, ceiling)


class _Run:
    """The shared state of one `fetch_companies` call."""

    def __init__(
        self,
        engine: Engine,
        client: JuheClient,
        limiter: RateLimiter,
        *,
        run_id: str,
        policy: RetryPolicy,
        total: int,
        budget: int | None,
        price_per_call: float,
        progress: Callable[[FetchProgress], None] | None,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        cancel: threading.Event | None,
        selected_at: dt.datetime,
    ) -> None:
        self.engine, self.client, self.limiter = engine, client, limiter
        self.run_id, self.policy = run_id, policy
        self.budget, self.price = budget, price_per_call
        self.progress, self.sleep, self.clock, self.cancel = progress, sleep, clock, cancel
        self.report = FetchReport(total=total)
        self.started = clock()
        self.selected_at = selected_at
        self._done = 0
        self._last_progress = self.started
        self._stop = threading.Event()  # no request may start or leave any more
        self._spent = threading.Event()  # the budget is spent: no new one may start
        self._lock = threading.Lock()

    # -- stopping -------------------------------------------------------------------------
    def halted(self) -> bool:
        if self.cancel is not None and self.cancel.is_set() and not self._stop.is_set():
            self.halt("cancelled", None)
        return self._stop.is_set() or self._spent.is_set()

    def halt(self, kind: str, code: int | None) -> None:
        """Stop: no new request starts. A budget stop lets the requests that already hold a
        budget unit leave; every other stop holds them too."""
        with self._lock:
            if self.report.stopped_by is None:
                self.report.stopped_by, self.report.stop_code = kind, code
            (self._spent if kind == "budget" else self._stop).set()

    def pause(self, seconds: float) -> None:
        """Backoff sleep in slices, so a stop does not wait for the longest backoff."""
        while seconds > 0 and not self.halted():
            step = min(_SLEEP_SLICE_S, seconds)
            self.sleep(step)
            seconds -= step

    # -- one HTTP attempt -----------------------------------------------------------------
    def start_call(self) -> Slot:
        """Take a budget unit and then a limiter slot (so no database wait sits between the slot
        and the send), unless the run is stopping."""
        if self.halted():
            raise _Halted
        reserved_at = dt.datetime.now(dt.UTC)
        if self.budget is not None and not reserve_call(self.engine, self.budget, reserved_at):
            self.halt("budget", None)
            raise _Halted
        try:
            slot = self.limiter.acquire()
            if self._stop.is_set():  # quota, maintenance, a key error, a cancel: hold it
                raise _Halted
        except BaseException:
            if self.budget is not None:
                return_call(self.engine, reserved_at)  # never sent
            raise
        with self._lock:
            self.report.calls += 1
        return slot

    def attempt(self, company: DueCompany, attempts: _Attempts) -> JuheResponse:
        slot = self.start_call()
        attempts.number += 1
        attempts.called = True
        called_at = dt.datetime.now(dt.UTC)
        try:
            response = self.client.query(
                company.query, on_sent=slot.sent, before_send=slot.before_send
            )
        except JuheTransientError as exc:
            self.ledger(
                CallRecord(
                    company.id,
                    called_at,
                    attempts.number,
                    ErrorClass.TRANSIENT,
                    self.run_id,
                    http_status=exc.http_status,
                    detail=exc.detail,
                )
            )
            attempts.note(exc)
            raise
        except JuheUnusableAnswerError as exc:
            call = CallRecord.of_unusable(company.id, called_at, attempts.number, exc, self.run_id)
            land_unusable(self.engine, company.id, company.query, exc, call, self.run_id)
            self.count_call(call)
            attempts.note(exc)
            raise
        call = CallRecord.of_response(company.id, called_at, attempts.number, response, self.run_id)
        if response.error_class in (ErrorClass.OK, ErrorClass.NOT_FOUND):
            land_response(self.engine, company.id, company.query, response, call, self.run_id)
            self.count_call(call)
            return response
        self.ledger(call)
        error = error_for(response.error_code, response.http_status, response.reason or "")
        attempts.note(error)
        if isinstance(error, JuheThrottledError):
            self.limiter.penalize(self.policy.throttle_pause)
        raise error

    def ledger(self, call: CallRecord) -> None:
        log_call(self.engine, call)
        self.count_call(call)

    def count_call(self, call: CallRecord) -> None:
        with self._lock:
            outcomes = self.report.calls_by_outcome
            outcomes[call.outcome.value] = outcomes.get(call.outcome.value, 0) + 1
            self.report.billable_calls += call.billable

    # -- one company ----------------------------------------------------------------------
    def retrying(self, attempts: _Attempts) -> tenacity.Retrying:
        policy = self.policy

        def give_up(state: tenacity.RetryCallState) -> bool:
            if _throttled(state):
                return attempts.throttled >= policy.max_throttled_attempts
            return attempts.transient >= policy.max_attempts

        def wait(state: tenacity.RetryCallState) -> float:
            # After a 10011 the limiter's penalty is the pause.
            return 0.0 if _throttled(state) else policy.backoff(attempts.transient)

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type((JuheTransientError, JuheThrottledError)),
            stop=give_up,
            wait=wait,
            sleep=self.pause,
            reraise=True,
        )

    def fetch(self, company: DueCompany) -> tuple[str, _Attempts]:
        """Fetch one company until it lands, is refused, fails for good, or the run stops."""
        attempts = _Attempts()
        now = dt.datetime.now(dt.UTC)
        if not claim(self.engine, company.id, self.run_id, since=self.selected_at, now=now):
            return "claimed", attempts
        try:
            response = self.retrying(attempts)(self.attempt, company, attempts)
        except _Halted:
            return "left", attempts
        except JuheUnusableAnswerError:
            return "failed", attempts  # landed as failed with its body (ledger.land_unusable)
        except JuheInvalidQueryError as exc:
            self.end_company(company, exc.code, invalid=True)
            return "invalid", attempts
        except JuheTransientError as exc:
            self.end_company(company, exc.code, invalid=False)
            return "failed", attempts
        except JuheThrottledError:
            return "left", attempts  # not refused on its own account: stays due, no backoff
        except (JuheQuotaError, JuheMaintenanceError, JuheFatalError) as exc:
            self.halt(_STOP_KINDS[type(exc)], exc.code)
            return "left", attempts
        return response.error_class.value, attempts

    def end_company(self, company: DueCompany, code: int | None, *, invalid: bool) -> None:
        mark_failed(
            self.engine,
            company.id,
            error_code=code,
            invalid=invalid,
            attempted_at=dt.datetime.now(dt.UTC),
        )

    # -- bookkeeping ----------------------------------------------------------------------
    def finished(self, company: DueCompany, outcome: str, attempts: _Attempts) -> None:
        report = self.report
        with self._lock:
            self._done += 1
            report.attempted += attempts.called
            if outcome == "ok":
                report.landed_ok += 1
            elif outcome == "not_found":
                report.not_found += 1
            elif outcome == "invalid":
                report.invalid += 1
            elif outcome == "failed":
                report.failed += 1
            elif outcome == "claimed":
                report.claimed_elsewhere += 1
            if outcome in ("invalid", "failed"):
                examples = report.failures_by_code.setdefault(attempts.failure_key(), [])
                if len(examples) < _EXAMPLES:
                    examples.append(company.name)
            snapshot = self.snapshot(force=False)
        if snapshot is not None and self.progress is not None:
            self.progress(snapshot)

    def snapshot(self, *, force: bool) -> FetchProgress | None:
        """Progress, at most every PROGRESS_EVERY_S (call with the lock held)."""
        now = self.clock()
        if not force and now - self._last_progress < PROGRESS_EVERY_S:
            return None
        self._last_progress = now
        elapsed = max(now - self.started, 1e-9)
        rate = self._done / elapsed
        left = self.report.total - self._done
        return FetchProgress(
            done=self._done,
            total=self.report.total,
            calls=self.report.calls,
            elapsed=elapsed,
            rate=self.report.calls / elapsed,
            eta_seconds=left / rate if rate else None,
        )

    def work(self, companies: queue.SimpleQueue[DueCompany]) -> None:
        try:
            while not self.halted():
                try:
                    company = companies.get_nowait()
                except queue.Empty:
                    return
                outcome, attempts = self.fetch(company)
                self.finished(company, outcome, attempts)
        except BaseException:
            self._stop.set()  # an unexpected error (database, limiter): stop the other workers
            raise

    def finish(self, budget: int | None) -> FetchReport:
        report = self.report
        report.elapsed = self.clock() - self.started
        report.achieved_rate = report.calls / report.elapsed if report.elapsed > 0 else 0.0
        done = report.landed_ok + report.not_found + report.invalid + report.claimed_elsewhere
        report.remaining = report.total - done
        report.estimated_cost = round(report.billable_calls * self.price, 6)
        report.stop_message = _stop_message(report, budget)
        if self.progress is not None:
            with self._lock:
                snapshot = self.snapshot(force=True)
            assert snapshot is not None
            self.progress(snapshot)
        return report


def _stop_message(report: FetchReport, budget: int | None) -> str | None:
    """Why the run stopped, in words an operator can act on (the due count is in `remaining`)."""
    if report.stopped_by in ("quota", "maintenance", "fatal"):
        return f"Stopped calling juhe: {describe(report.stop_code)}."
    if report.stopped_by == "budget":
        return (
            f"Stopped calling juhe: the daily budget of {budget} calls (JUHE_DAILY_BUDGET, "
            "Asia/Shanghai day) is used up; the next day's run resumes."
        )
    if report.stopped_by == "cancelled":
        return "Stopped calling juhe: the run was cancelled."
    return None


def fetch_companies(
    engine: Engine,
    companies: Sequence[DueCompany],
    client: JuheClient,
    limiter: RateLimiter,
    *,
    run_id: str,
    concurrency: int | None = None,
    max_attempts: int = 4,
    max_throttled_attempts: int = 16,
    backoff_base: float = 0.5,
    backoff_cap: float = 8.0,
    daily_budget: int | None = None,
    price_per_call: float = 0.0,
    progress: Callable[[FetchProgress], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    stop_event: threading.Event | None = None,
    selected_at: dt.datetime | None = None,
) -> FetchReport:
    """Fetch `companies` (see the module docstring); the report of what happened.

    `concurrency` defaults to `default_concurrency(limiter.qps)`: 14 workers at 20 QPS.
    `selected_at`: when `companies` were found due (default: now); a company another run
    attempted since then is skipped, not bought again.
    """
    run = _Run(
        engine,
        client,
        limiter,
        run_id=run_id,
        total=len(companies),
        policy=RetryPolicy(max_attempts, max_throttled_attempts, backoff_base, backoff_cap),
        budget=daily_budget,
        price_per_call=price_per_call,
        progress=progress,
        sleep=sleep,
        clock=clock,
        cancel=stop_event,
        selected_at=selected_at or dt.datetime.now(dt.UTC),
    )
    pending: queue.SimpleQueue[DueCompany] = queue.SimpleQueue()
    for company in companies:
        pending.put(company)
    workers = min(concurrency or default_concurrency(limiter.qps), max(len(companies), 1))
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix=f"juhe-{run_id[:8]}") as pool:
            futures = [pool.submit(run.work, pending) for _ in range(workers)]
        for future in futures:
            future.result()
    finally:
        release(engine, run_id)
    return run.finish(daily_budget)
