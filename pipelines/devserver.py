"""Starts the Dagster webserver and daemon for zizhi's workspace, as `make dev` and the UI tests do.

`dagster dev` is superseded in the pinned release (it warns to use `dg dev`, which needs a `dg`
project layout); running its two processes directly is supported and warning-free.

Each service runs in its own process group, with the processes it starts (code servers, run
workers). Stopping sends SIGTERM to both groups, then SIGKILL to whatever is left after a bound,
so leaving the block never hangs on a daemon that is slow to shut down.
"""

from __future__ import annotations

import contextlib
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
    ready_timeout: float = 180.0,
    stop_timeout: float = 20.0,
) -> Iterator[str]:
    """Run webserver + daemon until the block ends; yields the UI's base URL once it answers.

    `ready_timeout`: how long the webserver may take to answer. `stop_timeout`: how long both
    services get to stop after SIGTERM before their process groups are killed."""
    environment = {**os.environ, **(env or {})}
    _initialize_storage(environment["DAGSTER_HOME"])
    workspace = ["-w", str(PROJECT_ROOT / "workspace.yaml")]
    services: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str, *args: str) -> None:
        services[name] = subprocess.Popen(  # noqa: S603 - our own console scripts, no shell
            [_bin(name), *args],
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT if log else None,
            start_new_session=True,
        )

    url = f"http://{host}:{port}"
    try:
        start("dagster-webserver", *workspace, "-h", host, "-p", str(port))
        _wait_until_ready(url, services, ready_timeout, log)
        # The daemon evaluates backfills every 30 s, first as it starts: started now, it finds
        # a backfill launched as soon as the UI answers on that first tick, not 30 s later.
        start("dagster-daemon", "run", *workspace)
        yield url
    finally:
        stop_process_groups(list(services.values()), stop_timeout)


def stop_process_groups(processes: list[subprocess.Popen[bytes]], timeout: float) -> None:
    """SIGTERM each process's group, wait up to `timeout` seconds for the leaders, then SIGKILL
    the groups: what is left of them (a leader that ignored SIGTERM, a code server or run worker
    its leader left behind) cannot outlive the call. Each process must lead its own group."""
    for process in processes:
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
    for process in processes:
        _signal_group(process, signal.SIGKILL)
    for process in processes:
        process.wait(timeout=10)  # SIGKILL cannot be caught: this only reaps


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    # The group outlives its leader while its children run, so signal it even after the leader
    # exited; a group with no process left raises ProcessLookupError.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


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


def _wait_until_ready(
    url: str, services: Mapping[str, subprocess.Popen[bytes]], timeout: float, log: IO[str] | None
) -> None:
    where = f" (output in {log.name})" if log is not None and hasattr(log, "name") else ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, process in services.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with code {process.returncode} during start-up{where}"
                )
        try:
            if httpx.get(f"{url}/server_info", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError(
        f"the Dagster webserver did not answer at {url} within {timeout:.0f} s: the machine is "
        f"too slow or start-up hangs{where}"
    )
