"""The project's shared fixtures (../shared/fixtures beside the checkout), with a snapshot in
tests/fixtures/ for checkouts that have no shared folder beside them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = (ROOT.parent / "shared" / "fixtures", ROOT / "tests" / "fixtures")


def fixture_path(name: str) -> Path:
    return next(folder / name for folder in CANDIDATES if (folder / name).exists())


def load_fixture(name: str) -> Any:
    return json.loads(fixture_path(name).read_text(encoding="utf-8"))
