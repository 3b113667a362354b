"""统一社会信用代码, 注册号, names and match keys as the parsing rules state them
(docs/architecture.md#parsing-rules)."""

from __future__ import annotations

import pytest

from pipelines.roster.identifiers import (
    clean_name,
    is_valid_regno15,
    is_valid_uscc,
    match_key,
    normalize_uscc,
    regno_check_digit,
    uscc_check_character,
)
from tests.shared_fixtures import load_fixture

FIXTURES = load_fixture("identifiers.json")


@pytest.mark.parametrize("code", FIXTURES["uscc_valid"])
def test_fixture_valid_uscc(code: str) -> None:
    assert is_valid_uscc(code)
    assert uscc_check_character(code[:17]) == code[17]


@pytest.mark.parametrize(
    "code",
    [
        *FIXTURES["uscc_invalid"],
        "",
        "91110000600037341LX",
        "91110000600037341l",
        "9111000060003734 L",
    ],
)
def test_invalid_uscc(code: str) -> None:
    assert not is_valid_uscc(code)


@pytest.mark.parametrize("code", FIXTURES["regno15_valid"])
def test_fixture_valid_regno(code: str) -> None:
    assert is_valid_regno15(code)


@pytest.mark.parametrize(
    "code", [*FIXTURES["regno15_invalid"], "11010800000001", "11010800000001A", "1101080000000160"]
)
def test_invalid_regno(code: str) -> None:
    assert not is_valid_regno15(code)


def test_regno_expected_check_digit() -> None:
    assert regno_check_digit("11010800000001") == "6"
    assert regno_check_digit("1101080000000A") is None


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("91110000600037341L", "91110000600037341L"),
        ("  91110000600037341l ", "91110000600037341L"),
        ("９１１１００００６０００３７３４１Ｌ", "91110000600037341L"),
        ("9111 0000 6000 3734 1L", "91110000600037341L"),
        ("\u200b91110000600037341L\ufeff", "91110000600037341L"),
        ("9111\u3000000060003734\t1L", "91110000600037341L"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalize_uscc(raw: str | None, normalized: str) -> None:
    assert normalize_uscc(raw) == normalized


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("  北京建工集团有限责任公司  ", "北京建工集团有限责任公司"),
        ("北京\t建工\n\n集团", "北京 建工 集团"),
        ("北京\u3000\u3000建工", "北京 建工"),
        ("北京\u200b建工\u200d集团\u202e有限\ufeff公司", "北京建工集团有限公司"),
        ("北京\x07建工\x1b集团", "北京建工集团"),
        ("北京（海淀）建工", "北京（海淀）建工"),  # full width kept as typed
        ("x'); DROP TABLE companies; --", "x'); DROP TABLE companies; --"),
        ("🏗️建工 😀", "🏗️建工 😀"),
        ("", ""),
        (None, ""),
    ],
)
def test_clean_name(raw: str | None, cleaned: str) -> None:
    assert clean_name(raw) == cleaned


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("中铁一局集团（天津）建设工程有限公司", "中铁一局集团(天津)建设工程有限公司"),
        ("中铁一局集团【天津】建设工程有限公司", "中铁一局集团[天津]建设工程有限公司"),
        ("中铁一局集团〔天津〕建设工程有限公司", "中铁一局集团 ( 天津 ) 建设工程有限公司"),
        ("中铁一局集团［天津］建设工程有限公司", "中铁一局集团(天津)建设工程有限公司"),
        ("ＡＢＣ建设有限公司", "ABC建设有限公司"),
        ("北京 建工\u3000集团", "北京建工集团"),
        ("北京\u200b建工集团", "北京建工集团"),
    ],
)
def test_same_match_key(first: str, second: str) -> None:
    assert match_key(first) == match_key(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("北京建工集团有限公司", "北京建工集团有限责任公司"),
        ("北京建工集团有限公司", "北京建工集团股份有限公司"),
        ("北京建工一公司", "北京建工二公司"),
    ],
)
def test_different_match_key(first: str, second: str) -> None:
    assert match_key(first) != match_key(second)


def test_match_key_form() -> None:
    assert match_key(" 中铁【天津】 建设（集团）有限公司 ") == "中铁(天津)建设(集团)有限公司"
