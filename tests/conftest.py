"""Shared pytest configuration. Fixtures live in plugin modules, one per area."""

pytest_plugins = ["tests.fixtures_db", "tests.fixtures_sandbox"]


def pytest_report_header(config):  # type: ignore[no-untyped-def]
    from tests.fixtures_db import BACKEND

    return f"zizhi test database backend: {BACKEND}"
