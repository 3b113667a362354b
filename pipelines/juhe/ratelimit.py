"""One juhe rate limit shared by every process that uses the same database
(docs/architecture.md#rate-limit).

`JUHE_QPS` means: no more than that many requests START in any 1-second window — a strict
sliding window, as juhe counts — not a bucket allowing a burst on top. The log of request starts
is a pyrate-limiter bucket table: its SQLite bucket in a file beside the SQLite database, or its
PostgreSQL bucket table `ratelimit___<name>` in the same database. The policy is pyrate's
`SlidingWindowLog` over two rates (`window_rates`).

What this module adds, and why pyrate-limiter alone is not enough:

* **The start time is read inside the cross-process lock, just before it is recorded.**
  pyrate's `Limiter` stamps an item before it takes the bucket's lock and, after a wait, adds the
  planned sleep to the old stamp instead of reading the clock again. Either way a request can be
  recorded earlier than it really starts, and the slot it frees opens less than a window after
  its real start: a violation as juhe counts.
* **No busy spin, no lost capacity, few round trips on PostgreSQL.** `PostgresBucket.put` takes
  `LOCK TABLE … NOWAIT` and reports contention as "full", and one admission costs seven round
  trips (clock, lock, count, peek, insert, commit, plus the pool), during which the recorded
  start ages: measured under load, up to 57 ms between the clock read and the request leaving —
  more than the safety margin. Here one pipelined transaction on the same table takes the same
  lock *blocking*, reads `clock_timestamp()`, decides and inserts (one round trip). pyrate's own
  buckets stay interoperable: they contend for the same table lock.
* **SQLite:** pyrate's `SQLiteBucket` with its `FileLock` (needs `filelock`), re-entered here so
  the clock is read under it, polled every millisecond (pyrate's default poll is 50 ms).
* **One waiter per process.** Threads queue on a process-local lock; only its holder talks to the
  shared log and sleeps exactly until the request that blocks it ages out.
* **Pacing.** A sliding window alone keeps the bursts it starts with (20 requests at once, every
  second), and a burst is what a late arrival tips over the limit. A second rate spaces starts
  evenly at the window's average spacing. Starts come later than allowed (a thread wakes late,
  the bytes leave after the grant; ~3 ms idle, 10–20 ms on a loaded host) and the stamps are
  the real starts, so that delay would add to every spacing: the limiter measures it (a moving
  average) and shortens the pacing rate by it (to no less than `MIN_PACING` of the spacing).
* **Send-time stamps.** A slot is granted with the current time, then re-stamped with the moment
  the request's bytes were handed to the socket (`Slot.sent`, called by the HTTP transport). The
  log therefore holds real send times, whatever the delay between grant and send (a starved
  thread, a GIL switch, a slow DNS lookup): on a loaded host that delay reaches tens of
  milliseconds and more, which no fixed margin covers. A stamp is read after the write returns,
  so it is never earlier than the send. (Another process admitted between grant and re-stamp sees
  the grant time, which only matters if the delay exceeds the whole window.)
* **An adaptive margin** widens the window for what no clock here sees: the network's one-way
  delay jitter between our send and juhe's arrival clock. It starts at `margin_ms` (setting
  `JUHE_RATE_MARGIN_MS`; by default `default_margin_ms(qps)`, wider for fewer slots a second);
  every 10011 doubles the extra margin at once (at least +50 ms, at most
  `MAX_MARGIN_MS`), and the extra decays with a half-life of `MARGIN_HALF_LIFE_S`.

The remaining bound: juhe counts at most `floor(qps)` arrivals in any second as long as the
spread of one-way delays between our requests stays under the current margin. What exceeds it
(a network pause longer than the margin) can put one request over; juhe answers 10011, the
fetcher retries that company after a pause, and the margin widens.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, cast

import filelock
import sqlalchemy as sa
from pyrate_limiter import Decision, PostgresBucket, Rate, RateItem, SQLiteBucket

from pipelines.db import create_private_files
from pipelines.settings import MAX_RATE_MARGIN_MS

MAX_MARGIN_MS = MAX_RATE_MARGIN_MS
# The default margin by limit: enough for a lognormal one-way jitter of median 20 ms and p99
# 120 ms to put no request over the limit (simulated, 100,000 requests per limit; measured
# against the sandbox at 20 QPS). Fewer slots a window means a late arrival tips it over sooner.
_MARGIN_SLOT_MS = 2500
_MIN_DEFAULT_MARGIN_MS, _MAX_DEFAULT_MARGIN_MS = 80, 400


def default_margin_ms(qps: float) -> int:
    """2.5 s / floor(qps), within 80–400 ms: 125 ms at 20 QPS, 250 ms at 10, 400 ms at ≤ 6."""
    slots = max(1, math.floor(qps))
    return min(_MAX_DEFAULT_MARGIN_MS, max(_MIN_DEFAULT_MARGIN_MS, _MARGIN_SLOT_MS // slots))


MARGIN_STEP_MS = 50
MARGIN_HALF_LIFE_S = 300.0
DEFAULT_MAX_WAIT = 120.0
log = logging.getLogger(__name__)
MIN_PACING = 0.7
_LATENESS_WEIGHT = 0.1
_LEAK_EVERY_S = 10.0
_FILE_LOCK_POLL_S = 0.001


class RateLimitTimeout(RuntimeError):
    """No slot within the wait bound: other runs hold the whole limit, or a lock is stuck."""


class Slot(Protocol):
    """A granted start. `before_send()` runs just before the request's first bytes are written
    (a slot granted too long ago is exchanged for a fresh one); `sent()` re-stamps it with the
    moment the request really left."""

    def before_send(self) -> None: ...

    def sent(self) -> None: ...


class RateLimiter(Protocol):
    """What the fetcher needs from a limiter."""

    qps: float

    def acquire(self) -> Slot: ...

    def penalize(self, seconds: float) -> None: ...


class _Window(Protocol):
    """A shared log of request starts: admit one now, or say how long to wait."""

    def admit(self, token: str, rates: list[Rate]) -> int | None: ...

    def restamp(self, token: str) -> None: ...

    def forget(self, token: str) -> None: ...

    def close(self) -> None: ...


class _SharedSlot:
    def __init__(self, limiter: SharedRateLimiter, token: str, allowed_at: float | None) -> None:
        self._limiter, self._token, self._allowed_at = limiter, token, allowed_at
        self._granted = time.monotonic()
        self._done = False

    def before_send(self) -> None:
        """Until `sent()`, other processes see the grant time; once that is older than the
        window's stale bound, the grant could age out of their windows before this request even
        leaves. Then take a fresh slot (the old one still counts while we wait) and drop the old."""
        if time.monotonic() - self._granted < self._limiter.stale_after:
            return
        old = self._token
        self._token, self._allowed_at = self._limiter._admit()
        self._granted = time.monotonic()
        self._limiter._forget(old)

    def sent(self) -> None:
        if not self._done:
            self._done = True
            now = time.monotonic()
            late = None if self._allowed_at is None else max(0.0, now - self._allowed_at)
            self._limiter._restamp(self._token, now - self._granted, late)


def window_rates(qps: float, margin_ms: int | None = None, late_ms: float = 0.0) -> list[Rate]:
    """The strict window for `qps`, preceded by a pacing rate that spreads requests out.

    The window: floor(qps) starts per second (+ margin), or 1 per 1/qps s below 1 QPS. The pacing
    rate allows one start per window/limit, less `late_ms` (how late starts come after they were
    allowed: a waking thread, the send), so the real starts are evenly spaced at window/limit.
    """
    if qps <= 0:
        raise ValueError(f"qps must be positive, got {qps}")
    if margin_ms is None:
        margin_ms = default_margin_ms(qps)
    if qps < 1:
        return [Rate(1, math.ceil(1000 / qps) + margin_ms)]
    window = Rate(math.floor(qps), 1000 + margin_ms)
    even = window.interval / window.limit
    spacing_ms = math.floor(max(MIN_PACING * even, even - late_ms))
    if window.limit == 1 or spacing_ms < 1:  # above ~750 QPS the clock cannot pace finer
        return [window]
    return [Rate(1, spacing_ms), window]


class AdaptiveMargin:
    """The window's margin in ms: `base`, plus an extra that every 10011 widens at once and that
    halves every `half_life` seconds after."""

    def __init__(
        self,
        base_ms: int,
        *,
        half_life: float = MARGIN_HALF_LIFE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if base_ms < 0:
            raise ValueError(f"margin must be >= 0 ms, got {base_ms}")
        self.base_ms = base_ms
        self._half_life, self._clock = half_life, clock
        self._extra_ms, self._since = 0.0, clock()

    def current(self) -> int:
        return min(MAX_MARGIN_MS, self.base_ms + round(self._extra()))

    def widen(self) -> None:
        """A 10011: juhe counted more than the limit, so the jitter exceeds the margin. The
        10011s of one burst (within a second) widen it once."""
        if self._extra_ms and self._clock() - self._since < 1.0:
            return
        extra = self._extra()
        self._extra_ms = min(MAX_MARGIN_MS - self.base_ms, max(2 * extra, extra + MARGIN_STEP_MS))
        self._since = self._clock()

    def _extra(self) -> float:
        elapsed = max(0.0, self._clock() - self._since)
        return self._extra_ms * 0.5 ** (elapsed / self._half_life)


class SharedRateLimiter:
    """Blocks callers until a request may start without breaking the shared window."""

    def __init__(
        self,
        window: _Window,
        qps: float,
        *,
        name: str = "juhe",
        margin_ms: int | None = None,
        max_wait: float = DEFAULT_MAX_WAIT,
    ) -> None:
        window_rates(qps, margin_ms)  # validates qps
        margin_ms = default_margin_ms(qps) if margin_ms is None else margin_ms
        self.qps = qps
        self.name = name
        self.max_wait = max_wait
        self.margin = AdaptiveMargin(margin_ms)
        # seconds from grant to send, the last 10,000, for benchmarks
        self.send_lags: deque[float] = deque(maxlen=10_000)
        self.late_ms = 0.0  # moving average: how late starts come after they were allowed
        self._window = window
        self._local = threading.Lock()
        self._paused_until = 0.0

    @classmethod
    def for_database(
        cls,
        database_url: str,
        qps: float,
        name: str = "juhe",
        *,
        margin_ms: int | None = None,
        max_wait: float = DEFAULT_MAX_WAIT,
    ) -> SharedRateLimiter:
        """The limiter every process using `database_url` shares (SQLite file or PostgreSQL)."""
        url = sa.make_url(database_url)
        rates = window_rates(qps, margin_ms)
        window: _Window
        if url.get_backend_name() == "sqlite":
            window = _SQLiteWindow(url, rates, name, max_wait)
        elif url.get_backend_name() == "postgresql":
            window = _PostgresWindow(url, rates, name, max_wait)
        else:
            raise ValueError(f"no shared rate limiter for {url.get_backend_name()} databases")
        return cls(window, qps, name=name, margin_ms=margin_ms, max_wait=max_wait)

    @property
    def stale_after(self) -> float:
        """Seconds after which a granted, unsent slot is exchanged: half the shortest window."""
        return window_rates(self.qps, self.margin.base_ms)[-1].interval / 2000

    def acquire(self) -> Slot:
        """Block until a request may start now; RateLimitTimeout after `max_wait` seconds.
        Call the slot's `before_send()` and `sent()` around the request's first write
        (JuheClient does, via its transport)."""
        token, allowed_at = self._admit()
        return _SharedSlot(self, token, allowed_at)

    def _admit(self) -> tuple[str, float | None]:
        """A start recorded in the shared log: its token, and when it was allowed (None if it
        never waited, or waited out a penalty)."""
        deadline = time.monotonic() + self.max_wait
        if not self._local.acquire(timeout=self.max_wait):
            raise self._timeout()
        try:
            allowed_at: float | None = None
            while True:
                if self._sleep_through_penalty(deadline):
                    allowed_at = None  # how late it came says nothing about this host
                token = f"{self.name}:{uuid.uuid4().hex}"
                rates = window_rates(self.qps, self.margin.current(), self.late_ms)
                wait_ms = self._window.admit(token, rates)
                if wait_ms is None:
                    return token, allowed_at
                if time.monotonic() + wait_ms / 1000 > deadline:
                    raise self._timeout()
                allowed_at = time.monotonic() + wait_ms / 1000
                time.sleep(wait_ms / 1000)
        finally:
            self._local.release()

    def penalize(self, seconds: float) -> None:
        """After a 10011: no thread of this process starts a request for `seconds`, and the
        margin widens."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)
        self.margin.widen()

    def _restamp(self, token: str, lag: float, late: float | None) -> None:
        try:
            self._window.restamp(token)
        except Exception:  # the request has left; its stamp stays the grant time (< stale_after)
            log.warning(
                "could not re-stamp a juhe request's slot; widening the margin", exc_info=True
            )
            self.margin.widen()
            return
        self.send_lags.append(lag)
        if late is not None:  # the start had waited for its slot: it was late by this much
            self.late_ms += _LATENESS_WEIGHT * (1000 * late - self.late_ms)

    def close(self) -> None:
        self._window.close()

    def __enter__(self) -> SharedRateLimiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _forget(self, token: str) -> None:
        try:
            self._window.forget(token)
        except Exception:  # the stale slot ages out by itself; it only costs one slot
            log.warning("could not drop a stale juhe slot", exc_info=True)

    def _sleep_through_penalty(self, deadline: float) -> bool:
        """Sleep out a 10011 penalty; whether there was one."""
        pause = self._paused_until - time.monotonic()
        if pause <= 0:
            return False
        if time.monotonic() + pause > deadline:
            raise self._timeout()
        time.sleep(pause)
        return True

    def _timeout(self) -> RateLimitTimeout:
        return RateLimitTimeout(
            f"no juhe request slot within {self.max_wait:g} s (rate limit {self.qps:g}/s shared by "
            "every process on this database): other runs are using the whole limit, or the "
            "limiter lock is held by a stuck process"
        )


class _Leaker:
    """Forget starts older than every window, every ten seconds or so."""

    def __init__(self) -> None:
        self._last = 0.0

    def due(self) -> bool:
        if time.monotonic() - self._last < _LEAK_EVERY_S:
            return False
        self._last = time.monotonic()
        return True


def limiter_path(database: str) -> str:
    """Where the limiter of a SQLite database lives: a file beside it."""
    return f"{database}.ratelimit.sqlite"


class _SQLiteWindow:
    """pyrate's SQLiteBucket, its FileLock held while the clock is read and the start recorded."""

    def __init__(self, url: sa.URL, rates: list[Rate], name: str, max_wait: float) -> None:
        if not url.database or url.database == ":memory:":
            raise ValueError("a shared rate limit needs a SQLite database file (or PostgreSQL)")
        create_private_files()  # the limiter's file, like the database, is its owner's only
        self._bucket = SQLiteBucket.init_from_file(
            rates,
            table=f"ratelimit_{name}",
            db_path=limiter_path(url.database),
            use_file_lock=True,
        )
        # With use_file_lock the bucket's lock is a filelock.FileLock (typed as an RLock).
        self._lock = cast(filelock.BaseFileLock, self._bucket.lock)
        self._restamp_sql = f"UPDATE 'ratelimit_{name}' SET item_timestamp = ? WHERE name = ?"
        self._forget_sql = f"DELETE FROM 'ratelimit_{name}' WHERE name = ?"
        self._max_wait = max_wait
        self._leaker = _Leaker()

    def admit(self, token: str, rates: list[Rate]) -> int | None:
        with self._locked():
            self._bucket.rates = rates  # the margin adapts; pyrate reads the list on each put
            now = self._bucket.now()
            decision = self._bucket.put_decision(RateItem(token, now))
            assert isinstance(decision, Decision)
            if self._leaker.due():
                self._bucket.leak(now)
        return None if decision.allowed else max(1, decision.retry_after_ms or 1)

    def restamp(self, token: str) -> None:
        with self._locked():
            conn = self._bucket.conn
            conn.execute(self._restamp_sql, (self._bucket.now(), token)).close()
            conn.commit()

    def forget(self, token: str) -> None:
        with self._locked():
            conn = self._bucket.conn
            conn.execute(self._forget_sql, (token,)).close()
            conn.commit()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self._lock.acquire(timeout=self._max_wait, poll_interval=_FILE_LOCK_POLL_S)
        except filelock.Timeout:
            raise RateLimitTimeout(
                f"the limiter file lock {self._lock.lock_file} stayed held for {self._max_wait:g} s"
            ) from None
        try:
            yield
        finally:
            self._lock.release()

    def close(self) -> None:
        self._bucket.close()


# One statement: read the clock once, count each rate's window, record the start if every rate
# has room, and otherwise say when the entry blocking the tightest rate ages out (pyrate's
# SlidingWindowLog.retry_after: blocking + interval - now + 1 ms). Timestamps are `timestamp`
# in the session time zone, as PostgresBucket stores them.
_PG_ADMIT = """
WITH now AS (SELECT clock_timestamp()::timestamp AS t),
rates AS (SELECT * FROM unnest(%(limits)s::int[], %(intervals)s::int[]) AS r(lim, ms)),
verdict AS (
    SELECT r.lim, r.ms,
           (SELECT count(*) FROM {table}
             WHERE item_timestamp >= now.t - r.ms * INTERVAL '1 millisecond') AS n,
           (SELECT item_timestamp FROM {table}
             ORDER BY item_timestamp DESC OFFSET r.lim - 1 LIMIT 1) AS blocking
    FROM rates r, now
),
admitted AS (
    INSERT INTO {table} (name, weight, item_timestamp)
    SELECT %(name)s, 1, now.t FROM now
    WHERE NOT EXISTS (SELECT 1 FROM verdict WHERE n >= lim)
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM admitted),
       MAX(CEIL(EXTRACT(EPOCH FROM v.blocking + v.ms * INTERVAL '1 millisecond' - now.t) * 1000)
           + 1) FILTER (WHERE v.n >= v.lim)
FROM verdict v, now
"""
_PG_LEAK = """
DELETE FROM {table}
WHERE item_timestamp < clock_timestamp()::timestamp - %(longest)s * INTERVAL '1 millisecond'
"""


_PG_RESTAMP = """
UPDATE {table} SET item_timestamp = clock_timestamp()::timestamp WHERE name = %(token)s
"""
_PG_FORGET = "DELETE FROM {table} WHERE name = %(token)s"


class _PostgresWindow:
    """pyrate's PostgresBucket table, admitted in one pipelined transaction per request."""

    def __init__(self, url: sa.URL, rates: list[Rate], name: str, max_wait: float) -> None:
        import psycopg
        from psycopg import sql
        from psycopg_pool import ConnectionPool

        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._conn = psycopg.connect(conninfo)  # fails fast on a wrong URL
        # Re-stamps come from the threads whose requests left, while one thread waits to admit.
        self._conninfo = conninfo
        self._restamp_conn = psycopg.connect(conninfo, autocommit=True)
        self._restamp_lock = threading.Lock()
        with ConnectionPool(conninfo, min_size=1, max_size=1, open=True, timeout=10) as pool:
            bucket = PostgresBucket(pool, name, rates)  # creates the table and its index
        table = sql.Identifier(bucket._full_tbl)
        self._lock = sql.SQL("LOCK TABLE {table} IN EXCLUSIVE MODE").format(table=table)
        self._admit = sql.SQL(_PG_ADMIT).format(table=table)
        self._leak = sql.SQL(_PG_LEAK).format(table=table)
        self._restamp = sql.SQL(_PG_RESTAMP).format(table=table)
        self._forget = sql.SQL(_PG_FORGET).format(table=table)
        self._longest = max(r.interval for r in rates)
        for conn in (self._conn, self._restamp_conn):
            conn.execute(
                "SELECT set_config('lock_timeout', %s, false)", (f"{int(max_wait * 1000)}ms",)
            )
        self._conn.commit()
        self._leaker = _Leaker()

    def admit(self, token: str, rates: list[Rate]) -> int | None:
        import psycopg

        intervals = [r.interval for r in rates]
        params = {"limits": [r.limit for r in rates], "intervals": intervals, "name": token}
        try:
            with self._conn.pipeline():
                self._conn.execute(self._lock)
                cursor = self._conn.execute(self._admit, params)
                if self._leaker.due():
                    longest = max(self._longest, *intervals)
                    self._conn.execute(self._leak, {"longest": longest})
                self._conn.commit()
        except psycopg.errors.LockNotAvailable:
            self._conn.rollback()
            raise RateLimitTimeout("the PostgreSQL limiter table stayed locked too long") from None
        row = cursor.fetchone()
        assert row is not None
        admitted, wait_ms = row
        return None if admitted else max(1, int(wait_ms or 1))

    def restamp(self, token: str) -> None:
        self._side_statement(self._restamp, token)

    def forget(self, token: str) -> None:
        self._side_statement(self._forget, token)

    def _side_statement(self, statement: Any, token: str) -> None:
        """One autocommit statement on the side connection, reconnecting once if it was lost
        (a database restart)."""
        import psycopg

        with self._restamp_lock:
            try:
                self._restamp_conn.execute(statement, {"token": token})
            except psycopg.OperationalError:
                self._restamp_conn.close()
                self._restamp_conn = psycopg.connect(self._conninfo, autocommit=True)
                self._restamp_conn.execute(statement, {"token": token})

    def close(self) -> None:
        self._conn.close()
        self._restamp_conn.close()
