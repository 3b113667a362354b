"""`python -m juhe_sandbox`: serving as a subprocess, and writing rosters (the demo's too)."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from juhe_sandbox import identifiers as ids
from juhe_sandbox.__main__ import SAMPLE_ROSTER, main
from juhe_sandbox.dataset import Dataset
from tests.conftest import wait_until

REPO = Path(__file__).resolve().parents[2]
SECRET = "cli-s3cret-key"


def _wait_for(path: Path, process: subprocess.Popen[str]) -> str:
    """The URL the sandbox writes to its ready file once it serves."""

    def ready() -> str | None:
        assert process.poll() is None, process.communicate()  # it exited instead
        return path.read_text(encoding="utf-8").strip() if path.exists() else None

    return wait_until(ready, within=120, what="the sandbox to write its ready file")


def test_serves_until_sigterm_and_never_shows_the_key(tmp_path: Path) -> None:
    ready = tmp_path / "ready.txt"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "juhe_sandbox",
            "--port",
            "0",
            "--size",
            "30",
            "--verbose",
            "--api-key",
            SECRET,
            "--ready-file",
            str(ready),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = _wait_for(ready, process)
        assert url.startswith("http://127.0.0.1:") and url.endswith("/ConLicByName/query")
        name = Dataset(7, 30).companies[0].name
        with httpx.Client(timeout=5) as http:
            assert (
                str(http.get(url, params={"key": SECRET, "name": name}).json()["error_code"]) == "0"
            )
            assert http.post(url, data={"key": SECRET, "name": name}).status_code == 200
            assert (
                int(http.get(url, params={"key": "bad", "name": name}).json()["error_code"])
                == 10001
            )
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0
    assert stdout.splitlines()[0] == f"juhe sandbox listening on {url}"
    assert "/enterprise/App/ConLicByName/query" in stderr  # requests were logged…
    assert SECRET not in stdout + stderr  # …without the key


def test_sigint_also_stops_cleanly(tmp_path: Path) -> None:
    ready = tmp_path / "ready.txt"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "juhe_sandbox",
            "--port",
            "0",
            "--size",
            "10",
            "--ready-file",
            str(ready),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(ready, process)
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
    assert process.returncode == 0


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_roster_lists_every_company_with_mixed_identifiers(tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    assert main(["--write-roster", str(path), "--size", "120", "--seed", "3"]) == 0
    assert path.read_text(encoding="utf-8").startswith("企业名称,统一社会信用代码,注册号\n")
    rows, dataset = _rows(path), Dataset(3, 120)
    assert [r["企业名称"] for r in rows] == [c.name for c in dataset.companies]
    assert any(not r["统一社会信用代码"] and not r["注册号"] for r in rows)  # name only
    assert any(not r["统一社会信用代码"] and r["注册号"] for r in rows)  # 注册号 only
    assert all(ids.is_valid_uscc(r["统一社会信用代码"]) for r in rows if r["统一社会信用代码"])
    found = [dataset.lookup(r["统一社会信用代码"] or r["注册号"] or r["企业名称"]) for r in rows]
    assert found == dataset.companies


def test_committed_sample_roster_is_what_the_generator_writes(tmp_path: Path) -> None:
    path = tmp_path / "sample.csv"
    main(["--write-roster", str(path), "--size", "200", "--seed", "7", "--demo-rejects"])
    assert path.read_bytes() == SAMPLE_ROSTER.read_bytes()


def test_sample_roster_ends_with_the_demo_bad_rows() -> None:
    rows = _rows(SAMPLE_ROSTER)
    dataset = Dataset(7, 200)
    companies, bad = rows[:200], rows[200:]
    assert [r["企业名称"] for r in companies] == [c.name for c in dataset.companies]
    wrong_check, blank, too_long, duplicate, conflict_a, conflict_b = bad
    assert not ids.is_valid_uscc(wrong_check["统一社会信用代码"])
    assert not "".join(blank.values()).strip()
    assert len(too_long["企业名称"]) == 300
    original = dataset.lookup(duplicate["企业名称"])  # half-width brackets, same company
    assert original is not None and "(" in duplicate["企业名称"]
    assert duplicate["统一社会信用代码"] == original.uscc
    assert conflict_a["企业名称"] == conflict_b["企业名称"]
    assert conflict_a["统一社会信用代码"] != conflict_b["统一社会信用代码"]
    assert ids.is_valid_uscc(conflict_a["统一社会信用代码"])
    assert ids.is_valid_uscc(conflict_b["统一社会信用代码"])
