"""The summary `make demo` prints after a refresh: counts, statuses, changes, soonest expiries."""

from __future__ import annotations

import re

import dagster as dg

from pipelines.summary import print_summary
from tests.dagster.helpers import run_refresh, write_roster


def test_summary_reports_what_landed(engine, sandbox, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(
        "ROSTER_PATH", str(write_roster(tmp_path / "r.csv", sandbox.dataset.companies[:20]))
    )
    monkeypatch.setenv("JUHE_QPS", "200")
    with dg.instance_for_test() as instance:
        assert run_refresh(instance).success
    capsys.readouterr()
    print_summary(engine)
    out = capsys.readouterr().out
    assert re.search(r"^  companies +20$", out, re.MULTILINE)
    assert "companies by fetch status: " in out and "ok " in out
    assert "changes by type: added " in out
    expiring = out.split("Five licences expiring soonest\n")[1].splitlines()
    assert 1 <= len([line for line in expiring[:5] if line.startswith("  20")]) <= 5
