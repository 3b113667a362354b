"""Identifiers the sandbox generates carry valid check characters."""

from __future__ import annotations

from random import Random

import pytest

from juhe_sandbox import identifiers as ids
from tests.shared_fixtures import load_fixture

# The project's identifier fixtures (identifiers.json, found by tests/shared_fixtures.py).
_IDS = load_fixture("identifiers.json")
USCC_VALID, USCC_INVALID = _IDS["uscc_valid"], _IDS["uscc_invalid"]
REGNO_VALID, REGNO_INVALID = _IDS["regno15_valid"], _IDS["regno15_invalid"]


@pytest.mark.parametrize("code", USCC_VALID)
def test_real_usccs_are_valid(code: str) -> None:
    assert ids.is_valid_uscc(code)
    assert ids.is_valid_uscc(code.lower())


@pytest.mark.parametrize("code", USCC_INVALID)
def test_broken_usccs_are_invalid(code: str) -> None:
    assert not ids.is_valid_uscc(code)


@pytest.mark.parametrize(
    ("code", "valid"), [(c, True) for c in REGNO_VALID] + [(c, False) for c in REGNO_INVALID]
)
def test_registration_numbers(code: str, valid: bool) -> None:
    assert ids.is_valid_regno(code) is valid


def test_generated_identifiers_are_valid_and_corruption_is_detected() -> None:
    rng = Random(3)
    for _ in range(500):
        uscc = ids.make_uscc(rng, "410100")
        assert ids.is_valid_uscc(uscc) and uscc.startswith("91410100")
        assert not ids.is_valid_uscc(ids.corrupt_check_char(uscc))
        assert ids.org_code_check_char(uscc[8:16]) == uscc[16]
        assert ids.is_valid_regno(ids.make_regno(rng, "320500"))
