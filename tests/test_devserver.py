"""Stopping the Dagster services never hangs: SIGTERM to each process group, then SIGKILL to
whatever is left of it after the bound — a leader that ignores SIGTERM, or a child (a code server,
a run worker) its leader left behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from pipelines.devserver import stop_process_groups
from tests.conftest import wait_until

# A process that starts a child ignoring SIGTERM, writes the child's pid to argv[1] once the
# child runs, then sleeps (ignoring SIGTERM too when argv[2] says so).
LEADER = """
import signal, subprocess, sys, time
from pathlib import Path
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(flush=True); "
    "time.sleep(600)"], stdout=subprocess.PIPE)
child.stdout.readline()
if sys.argv[2] == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
Path(sys.argv[1]).write_text(str(child.pid))
time.sleep(600)
"""


def start_leader(tmp_path: Path, sigterm: str) -> tuple[subprocess.Popen[bytes], int]:
    pid_file = tmp_path / f"child-{sigterm}.pid"
    leader = subprocess.Popen(
        [sys.executable, "-c", LEADER, str(pid_file), sigterm], start_new_session=True
    )
    text = wait_until(
        lambda: pid_file.exists() and pid_file.read_text(), within=60, what="the leader to start"
    )
    return leader, int(text)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_group_that_ignores_sigterm_is_killed_after_the_bound(tmp_path: Path) -> None:
    leader, child = start_leader(tmp_path, "ignore")
    started = time.monotonic()
    stop_process_groups([leader], timeout=0.5)
    assert time.monotonic() - started < 30
    assert leader.returncode == -signal.SIGKILL
    wait_until(lambda: gone(child), within=30, what="the killed child to exit")


def test_a_child_its_leader_left_behind_is_killed_too(tmp_path: Path) -> None:
    leader, child = start_leader(tmp_path, "obey")
    stop_process_groups([leader], timeout=30)
    assert leader.returncode == -signal.SIGTERM  # the leader stopped on SIGTERM...
    wait_until(
        lambda: gone(child), within=30, what="the orphaned child to exit"
    )  # ...the child not


def test_processes_that_stop_on_sigterm_are_not_killed() -> None:
    sleep = [sys.executable, "-c", "import time; time.sleep(600)"]
    sleepers = [subprocess.Popen(sleep, start_new_session=True) for _ in range(2)]
    stop_process_groups(sleepers, timeout=60)
    assert [p.returncode for p in sleepers] == [-signal.SIGTERM, -signal.SIGTERM]
