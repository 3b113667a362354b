"""Identifiers the sandbox generates carry valid check characters."""

from __future__ import annotations

from random import Random

import pytest

from juhe_sandbox import identifiers as ids

# The project's identifier fixtures (shared/fixtures/identifiers.json).
USCC_VALID = [
    "91350100M000100Y43",
    "91110000600037341L",
    "91340600MA2PBM9HXD",
    "9135052155323005XL",
    "91610800064834709T",
    "91320594780268314T",
    "913208000535020631",
    "91330110MA2CC1X505",
]
USCC_INVALID = ["91110000600037341N", "9111000060003IOZSV", "12345"]
REGNO_VALID = ["110108000000016", "510000000391563"]
REGNO_INVALID = ["110108000000017"]


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
