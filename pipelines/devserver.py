"""Starts the Dagster webserver and daemon for zizhi's workspace, as `make dev` and the UI tests do.

`dagster dev` is superseded in the pinned release (it warns to use `dg dev`, which needs a `dg`
project layout); running its two processes directly is supported and warning-free.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

from pipelines.db import PROJECT_ROOT


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


@contextmanager
def dagster_services(
    *,
    host: str = "127.0.0.1",
    port: int = 3000,
    env: Mapping[str, str] | None = None,
    log: IO[str] | None = None,
    ready_timeout: float = 120.0,
) -> Iterator[str]:
    """Run webserver + daemon until the block ends; yields the UI's base URL once it answers."""
    environment = {**os.environ, **(env or {})}
    _initialize_storage(environment["DAGSTER_HOME"])
    workspace = ["-w", str(PROJECT_ROOT / "workspace.yaml")]
    commands = [
        [_bin("dagster-daemon"), "run", *workspace],
        [_bin("dagster-webserver"), *workspace, "-h", host, "-p", str(port)],
    ]
    processes = [
        subprocess.Popen(  # noqa: S603 - our own console scripts, no shell
            cmd,
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT if log else None,
            start_new_session=True,
        )
        for cmd in commands
    ]
    url = f"http://{host}:{port}"
    try:
        _wait_until_ready(url, processes, ready_timeout)
        yield url
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def _initialize_storage(home: str) -> None:
    """Create the instance's storage before two processes race to create it (and both stamp
    Dagster's alembic_version table, which then has two heads)."""
    import dagster as dg

    saved = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = home  # dagster.yaml reads it ({env: DAGSTER_HOME})
    try:
        with dg.DagsterInstance.from_config(home):
            pass
    finally:
        if saved is None:
            del os.environ["DAGSTER_HOME"]
        else:
            os.environ["DAGSTER_HOME"] = saved


def _wait_until_ready(url: str, processes: list[subprocess.Popen], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            raise RuntimeError("the Dagster webserver or daemon exited during start-up")
        try:
            if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the Dagster webserver did not answer at {url} within {timeout:.0f} s")
