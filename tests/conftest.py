"""Shared pytest configuration. Fixtures live in plugin modules, one per area; `wait_until` is
the one way a test waits for something another thread or process does."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

pytest_plugins = ["tests.fixtures_db", "tests.fixtures_sandbox"]

T = TypeVar("T")


def pytest_report_header(config):  # type: ignore[no-untyped-def]
    from tests.fixtures_db import BACKEND

    return f"zizhi test database backend: {BACKEND}"


def wait_until(
    condition: Callable[[], T | None], *, within: float, what: str, poll: float = 0.05
) -> T:
    """Poll `condition` until it returns a value other than None/False, and return it.

    `within` is a generous bound, many times what the wait takes on a loaded CI machine; past it
    the test fails saying it could not judge in time, never with a bare timeout. A condition
    that sees the awaited thing can no longer happen should fail the test itself."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(
                f"waited {within:.0f} s for {what}: this machine is too slow to judge the test "
                "(or it is broken)",
                pytrace=False,
            )
        time.sleep(poll)
