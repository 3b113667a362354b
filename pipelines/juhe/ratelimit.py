"""One juhe rate limit shared by every process that uses the same database (DESIGN.md).

`JUHE_QPS` means: no more than that many requests START in any 1-second window — a strict
sliding window, as juhe counts — not a bucket allowing a burst on top. The window is
pyrate-limiter's `SlidingWindowLog`, kept in its SQLite bucket (a file beside the SQLite database)
or its PostgreSQL bucket (a `ratelimit___<name>` table in the same database).

What this module adds on top of pyrate-limiter, and why:

* **Time is read inside the cross-process lock.** pyrate's `Limiter` stamps an item before it
  takes the bucket's lock and, after a wait, adds the planned sleep to the old stamp instead of
  reading the clock again. Either way a slot can be recorded earlier than the request really
  starts, so the next slot opens less than a window after it — a violation as juhe counts. Here
  each admission takes the lock, reads the clock, then counts and inserts.
* **No busy spin and no lost capacity under contention.** `PostgresBucket.put` uses
  `LOCK TABLE … NOWAIT` and reports contention as "full". Admissions are therefore serialised by a
  blocking PostgreSQL advisory lock first, so the NOWAIT lock is always free. On SQLite the
  bucket's own `FileLock` is taken with a 1 ms poll (its default is 50 ms).
* **One waiter per process.** Threads queue on a process-local lock; only its holder talks to the
  shared bucket and sleeps exactly until the oldest request in the window ages out.
* **A small safety margin** (`margin_ms`, default 35 ms) widens the window for network jitter
  between our start and juhe's arrival clock; 20 per 1.035 s is 96.6 % of 20 QPS.
"""

from __future__ import annotations

import math
import threading
import time
import zlib
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

import filelock
import sqlalchemy as sa
from pyrate_limiter import AbstractBucket, Decision, PostgresBucket, Rate, RateItem, SQLiteBucket

DEFAULT_MARGIN_MS = 35
DEFAULT_MAX_WAIT = 120.0
_LEAK_EVERY_S = 10.0
PACING = 0.9
_FILE_LOCK_POLL_S = 0.001


class RateLimitTimeout(RuntimeError):
    """No slot within the wait bound: another process holds the limit or the lock is stuck."""


class RateLimiter(Protocol):
    """What the fetcher needs from a limiter."""

    qps: float

    def acquire(self) -> None: ...

    def penalize(self, seconds: float) -> None: ...


def window_rates(qps: float, margin_ms: int = DEFAULT_MARGIN_MS) -> list[Rate]:
    """The strict window for `qps`, and a pacing rate that spreads its requests out.

    The window: floor(qps) starts per second (+ margin), or 1 per 1/qps s below 1 QPS. A sliding
    window alone keeps whatever bursts it starts with (20 requests at once, every second),
    and a burst is what makes arrival times jitter. The pacing rate allows one start per
    `PACING` × window/limit, which spreads requests out yet leaves room to catch up after a lull.
    """
    if qps <= 0:
        raise ValueError(f"qps must be positive, got {qps}")
    if qps < 1:
        return [Rate(1, math.ceil(1000 / qps) + margin_ms)]
    window = Rate(math.floor(qps), 1000 + margin_ms)
    if window.limit == 1:
        return [window]
    return [Rate(1, math.floor(PACING * window.interval / window.limit)), window]


class SharedRateLimiter:
    """Blocks callers until a request may start without breaking the shared window."""

    def __init__(
        self,
        bucket: AbstractBucket,
        mutex: AbstractContextManager[None],
        qps: float,
        *,
        name: str = "juhe",
        max_wait: float = DEFAULT_MAX_WAIT,
    ) -> None:
        self.qps = qps
        self.name = name
        self.max_wait = max_wait
        self._bucket = bucket
        self._mutex = mutex
        self._local = threading.Lock()
        self._paused_until = 0.0
        self._last_leak = 0.0

    @classmethod
    def for_database(
        cls,
        database_url: str,
        qps: float,
        name: str = "juhe",
        *,
        margin_ms: int = DEFAULT_MARGIN_MS,
        max_wait: float = DEFAULT_MAX_WAIT,
    ) -> SharedRateLimiter:
        """The limiter every process using `database_url` shares (SQLite file or PostgreSQL)."""
        url = sa.make_url(database_url)
        rates = window_rates(qps, margin_ms)
        if url.get_backend_name() == "sqlite":
            bucket, mutex = _sqlite_bucket(url, rates, name, max_wait)
        elif url.get_backend_name() == "postgresql":
            bucket, mutex = _postgres_bucket(url, rates, name, max_wait)
        else:
            raise ValueError(f"no shared rate limiter for {url.get_backend_name()} databases")
        return cls(bucket, mutex, qps, name=name, max_wait=max_wait)

    def acquire(self) -> None:
        """Block until a request may start now; RateLimitTimeout after `max_wait` seconds."""
        deadline = time.monotonic() + self.max_wait
        if not self._local.acquire(timeout=self.max_wait):
            raise self._timeout()
        try:
            while True:
                self._sleep_through_penalty(deadline)
                wait_ms = self._try_admit()
                if wait_ms is None:
                    return
                if time.monotonic() + wait_ms / 1000 > deadline:
                    raise self._timeout()
                time.sleep(wait_ms / 1000)
        finally:
            self._local.release()

    def penalize(self, seconds: float) -> None:
        """After a 10011: no thread of this process starts a request for `seconds`."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def close(self) -> None:
        self._bucket.close()
        close = getattr(self._mutex, "close", None)
        if close is not None:
            close()

    def _try_admit(self) -> int | None:
        """One admission under the shared lock: None if admitted, else milliseconds to wait."""
        with self._mutex:
            now = self._bucket.now()
            decision = self._bucket.put_decision(RateItem(self.name, now))  # type: ignore[arg-type]
            if not isinstance(decision, Decision):
                raise TypeError("SharedRateLimiter needs a synchronous bucket")
            self._leak_now_and_then(now)  # type: ignore[arg-type]
        if decision.allowed:
            return None
        # Rejected without a wait: only PostgreSQL NOWAIT contention, which the advisory lock
        # prevents among zizhi processes; retry in a millisecond rather than spin.
        return max(1, decision.retry_after_ms or 1)

    def _leak_now_and_then(self, now_ms: int) -> None:
        if time.monotonic() - self._last_leak >= _LEAK_EVERY_S:
            self._bucket.leak(now_ms)
            self._last_leak = time.monotonic()

    def _sleep_through_penalty(self, deadline: float) -> None:
        pause = self._paused_until - time.monotonic()
        if pause > 0:
            if time.monotonic() + pause > deadline:
                raise self._timeout()
            time.sleep(pause)

    def _timeout(self) -> RateLimitTimeout:
        return RateLimitTimeout(
            f"no juhe request slot within {self.max_wait:g} s (rate limit {self.qps:g}/s shared by "
            "every process on this database): other runs are using the whole limit, or the "
            "limiter lock is held by a stuck process"
        )


def limiter_path(database: str) -> Path:
    """Where the SQLite limiter of a SQLite database lives: beside it."""
    return Path(f"{database}.ratelimit.sqlite")


def _sqlite_bucket(
    url: sa.URL, rates: list[Rate], name: str, max_wait: float
) -> tuple[AbstractBucket, AbstractContextManager[None]]:
    if not url.database or url.database == ":memory:":
        raise ValueError("a shared rate limit needs a SQLite database file (or PostgreSQL)")
    path = limiter_path(url.database)
    path.parent.mkdir(parents=True, exist_ok=True)
    bucket = SQLiteBucket.init_from_file(
        rates, table=f"ratelimit_{name}", db_path=str(path), use_file_lock=True
    )
    return bucket, _FileLockMutex(bucket.lock, max_wait)


class _FileLockMutex:
    """The bucket's own FileLock (which `put` re-enters), polled every millisecond."""

    def __init__(self, lock: filelock.BaseFileLock, max_wait: float) -> None:
        self._lock = lock
        self._max_wait = max_wait

    def __enter__(self) -> None:
        try:
            self._lock.acquire(timeout=self._max_wait, poll_interval=_FILE_LOCK_POLL_S)
        except filelock.Timeout:
            raise RateLimitTimeout(f"the limiter file lock {self._lock.lock_file} stayed "
                                   f"held for {self._max_wait:g} s") from None

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def _postgres_bucket(
    url: sa.URL, rates: list[Rate], name: str, max_wait: float
) -> tuple[AbstractBucket, AbstractContextManager[None]]:
    from psycopg_pool import ConnectionPool

    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    pool = ConnectionPool(conninfo, min_size=1, max_size=2, open=True, name=f"ratelimit-{name}")
    bucket = PostgresBucket(pool, name, rates)
    return bucket, _AdvisoryLock(conninfo, f"ratelimit___{name}", max_wait)


class _AdvisoryLock:
    """A blocking cross-process mutex: a session advisory lock on a dedicated connection."""

    def __init__(self, conninfo: str, key: str, max_wait: float) -> None:
        import psycopg

        self._conn = psycopg.connect(conninfo, autocommit=True)
        self._conn.execute(
            "SELECT set_config('lock_timeout', %s, false)", (f"{int(max_wait * 1000)}ms",)
        )
        self._key = zlib.crc32(f"zizhi:{key}".encode()) & 0x7FFFFFFF

    def __enter__(self) -> None:
        import psycopg

        try:
            self._conn.execute("SELECT pg_advisory_lock(%s)", (self._key,))
        except psycopg.errors.LockNotAvailable:
            raise RateLimitTimeout("the PostgreSQL limiter lock stayed held too long") from None

    def __exit__(self, *exc: object) -> None:
        self._conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))

    def close(self) -> None:
        self._conn.close()
