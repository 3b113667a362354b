"""The shared limiter on the backend under test: strict window, pacing, penalty, wait bound."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipelines.juhe.ratelimit import (
    MARGIN_HALF_LIFE_S,
    MARGIN_STEP_MS,
    MAX_MARGIN_MS,
    AdaptiveMargin,
    RateLimitTimeout,
    SharedRateLimiter,
    default_margin_ms,
    window_rates,
)
from tests.fixtures_db import is_postgres

# Heavy or timing-sensitive: one xdist worker runs this group in sequence (see run_suites.sh).
pytestmark = [pytest.mark.xdist_group("heavy"), pytest.mark.timing_sensitive]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_margin_widens_at_once_on_a_10011_and_decays_back_to_the_base() -> None:
    clock = FakeClock()
    margin = AdaptiveMargin(120, clock=clock)
    assert margin.current() == 120
    margin.widen()
    assert margin.current() == 120 + MARGIN_STEP_MS
    margin.widen()  # the same burst of 10011s widens it once
    assert margin.current() == 120 + MARGIN_STEP_MS
    clock.now += 2
    margin.widen()  # a later 10011 doubles the extra
    assert margin.current() == 120 + 2 * MARGIN_STEP_MS
    clock.now += MARGIN_HALF_LIFE_S
    assert margin.current() == 120 + MARGIN_STEP_MS
    clock.now += 20 * MARGIN_HALF_LIFE_S
    assert margin.current() == 120
    for _ in range(30):
        clock.now += 2
        margin.widen()
    assert margin.current() == MAX_MARGIN_MS


def test_a_10011_penalty_widens_the_shared_window(database_url: str) -> None:
    with SharedRateLimiter.for_database(database_url, 20) as limiter:
        before = limiter.margin.current()
        limiter.penalize(0.0)
        assert limiter.margin.current() > before


def _stamps(database_url: str) -> list[float]:
    if is_postgres():
        engine = sa.create_engine(sa.make_url(database_url).set(drivername="postgresql+psycopg"))
        query = "SELECT extract(epoch FROM item_timestamp) * 1000 FROM ratelimit___juhe"
    else:
        path = sa.make_url(database_url).database
        engine = sa.create_engine(f"sqlite:///{path}.ratelimit.sqlite")
        query = "SELECT item_timestamp FROM ratelimit_juhe"
    with engine.connect() as conn:
        stamps = [float(v) for v in conn.execute(sa.text(query)).scalars()]
    engine.dispose()
    return stamps


def test_a_slot_is_restamped_when_its_request_leaves(database_url: str) -> None:
    with SharedRateLimiter.for_database(database_url, 20) as limiter:
        slot = limiter.acquire()
        [granted] = _stamps(database_url)
        time.sleep(0.2)  # a stall between grant and send; asserted only as "later"
        slot.sent()
        [sent] = _stamps(database_url)
    assert sent - granted >= 150
    assert limiter.send_lags and limiter.send_lags[0] >= 0.15


@pytest.mark.parametrize(
    ("qps", "expected"),
    [
        (20, [(1, 56), (20, 1125)]),
        (10, [(1, 125), (10, 1250)]),
        (2.5, [(1, 700), (2, 1400)]),  # "no more than 2.5 in any second" allows 2
        (1, [(1, 1400)]),
        (0.5, [(1, 2400)]),
        (40, [(1, 27), (40, 1080)]),
        (5000, [(5000, 1080)]),  # too fast to pace at millisecond resolution: window only
    ],
)
def test_window_is_strict_floor_of_qps_with_margin_and_pacing(qps, expected) -> None:  # type: ignore[no-untyped-def]
    assert [(r.limit, r.interval) for r in window_rates(qps)] == expected


def test_the_default_margin_widens_as_the_limit_has_fewer_slots() -> None:
    assert [default_margin_ms(q) for q in (1, 5, 10, 20, 40, 100)] == [400, 400, 250, 125, 80, 80]
    assert window_rates(20, margin_ms=35)[1].interval == 1035  # JUHE_RATE_MARGIN_MS wins


def test_pacing_is_shortened_by_how_late_starts_come_but_never_below_its_floor() -> None:
    assert window_rates(20, 120, late_ms=6)[0].interval == 50  # 56 - 6
    assert window_rates(20, 120, late_ms=500)[0].interval == 39  # 0.7 × 56
    assert window_rates(20, 120, late_ms=500)[1].interval == 1120  # the strict window stays


def test_qps_must_be_positive() -> None:
    with pytest.raises(ValueError, match="qps"):
        window_rates(0)


def test_threads_never_start_more_than_the_limit_in_a_window(database_url: str) -> None:
    # A wide margin keeps the assertion about the limiter, not about thread scheduling.
    limiter = SharedRateLimiter.for_database(database_url, 5, margin_ms=300)
    starts: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(4):
            limiter.acquire()
            with lock:
                starts.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    with limiter:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    starts.sort()
    assert len(starts) == 16
    assert all(later - earlier >= 1.0 for earlier, later in zip(starts, starts[5:], strict=False))


def test_a_full_window_raises_a_clear_timeout_instead_of_waiting_forever(
    database_url: str,
) -> None:
    first = SharedRateLimiter.for_database(database_url, 1)
    second = SharedRateLimiter.for_database(database_url, 1, max_wait=0.2)
    with first, second:
        first.acquire()
        with pytest.raises(RateLimitTimeout, match="other runs"):
            second.acquire()  # another limiter on the same database sees the slot taken


def test_penalty_pauses_every_thread_of_the_process(database_url: str) -> None:
    limiter = SharedRateLimiter.for_database(database_url, 100, max_wait=0.3)
    with limiter:
        limiter.acquire()
        limiter.penalize(5.0)
        with pytest.raises(RateLimitTimeout):
            limiter.acquire()


def test_sqlite_limiter_lives_beside_the_database(database_url: str) -> None:
    if is_postgres():
        pytest.skip("SQLite layout")
    with SharedRateLimiter.for_database(database_url, 10) as limiter:
        limiter.acquire()
    database = Path(sa.make_url(database_url).database or "")
    assert (database.parent / (database.name + ".ratelimit.sqlite")).exists()


def test_postgres_limiter_table_is_in_the_same_database(database_url: str) -> None:
    if not is_postgres():
        pytest.skip("PostgreSQL layout")
    with SharedRateLimiter.for_database(database_url, 10) as limiter:
        limiter.acquire()
    engine = sa.create_engine(sa.make_url(database_url).set(drivername="postgresql+psycopg"))
    with engine.connect() as conn:
        starts = conn.execute(sa.text("SELECT count(*) FROM ratelimit___juhe")).scalar_one()
    engine.dispose()
    assert starts == 1


def test_in_memory_sqlite_has_no_shared_limiter() -> None:
    with pytest.raises(ValueError, match="file"):
        SharedRateLimiter.for_database("sqlite://", 10)


def test_a_slot_that_waited_past_half_the_window_is_exchanged_before_it_is_sent(
    database_url: str,
) -> None:
    with SharedRateLimiter.for_database(database_url, 20) as limiter:
        slot = limiter.acquire()
        [granted] = _stamps(database_url)
        time.sleep(limiter.stale_after + 0.05)  # a freeze between slot and send
        slot.before_send()
        [renewed] = _stamps(database_url)  # the old slot is gone, a fresh one stands
        slot.sent()
    assert renewed - granted >= 1000 * limiter.stale_after


def test_a_fresh_slot_is_kept_as_it_is_before_it_is_sent(database_url: str) -> None:
    with SharedRateLimiter.for_database(database_url, 20) as limiter:
        slot = limiter.acquire()
        before = _stamps(database_url)
        slot.before_send()
        assert _stamps(database_url) == before
