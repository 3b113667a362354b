"""The roster corpus: every kind of messy row or file, and what the user gets back for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pipelines.roster.identifiers import match_key
from pipelines.roster.reader import RosterFileError
from pipelines.roster.validate import RosterResult, load_roster
from pipelines.shards import shard_of
from tests.roster import HEADER, write_csv, write_xlsx

GOOD = ["北京建工集团有限责任公司", "91110000600037341L", ""]
OK_USCC = "91350100M000100Y43"
OTHER_USCC = "9135052155323005XL"


@dataclass
class Expect:
    """What a roster of GOOD + the case's rows gives: accepted (name, uscc, query) and rejects."""

    accepted: list[tuple[str, str | None, str]] = field(default_factory=list)
    rejects: list[tuple[int, str]] = field(default_factory=list)  # (row number, reason)
    merged: int = 0


CORPUS: list[tuple[str, list[list[str]], Expect]] = [
    (
        "blank row",
        [[], ["甲公司", "", ""]],
        Expect([("甲公司", None, "甲公司")], [(3, "empty row")]),
    ),
    (
        "whitespace-only row",
        [["  ", "\u3000", "\t"], ["甲公司", "", ""]],
        Expect([("甲公司", None, "甲公司")], [(3, "empty row")]),
    ),
    (
        "full-width USCC",
        [["甲公司", "９１３５０１００Ｍ０００１００Ｙ４３", ""]],
        Expect([("甲公司", OK_USCC, OK_USCC)]),
    ),
    (
        "lower-case USCC with spaces",
        [["甲公司", " 91350100m000 100y43 ", ""]],
        Expect([("甲公司", OK_USCC, OK_USCC)]),
    ),
    (
        "wrong check character",
        [["甲公司", "91110000600037341N", ""]],
        Expect(
            rejects=[
                (3, "统一社会信用代码 91110000600037341N has a wrong check character (expected L)")
            ]
        ),
    ),
    (
        "USCC too short",
        [["甲公司", "12345", ""]],
        Expect(rejects=[(3, "统一社会信用代码 12345 has 5 characters; it must have 18")]),
    ),
    (
        "USCC with letters it never uses",
        [["甲公司", "9111000060003IOZSV", ""]],
        Expect(
            rejects=[
                (
                    3,
                    "统一社会信用代码 9111000060003IOZSV contains I, O, S, V, Z, which a "
                    "统一社会信用代码 never uses (no I, O, S, V, Z)",
                )
            ]
        ),
    ),
    (
        "10,000-character name",
        [["建" * 10_000, "", ""]],
        Expect(rejects=[(3, "company name is 10000 characters long; longest accepted is 200")]),
    ),
    (
        "control characters stripped",
        [["\x07甲\x1b公司\r\n", "", ""]],
        Expect([("甲公司", None, "甲公司")]),
    ),
    (
        "zero-width and bidi characters stripped",
        [["\u200b甲\u202e公\ufeff司\u2066", "", ""]],
        Expect([("甲公司", None, "甲公司")]),
    ),
    (
        "SQL-looking text kept verbatim",
        [["甲'); DROP TABLE companies;--", "", ""]],
        Expect([("甲'); DROP TABLE companies;--", None, "甲'); DROP TABLE companies;--")]),
    ),
    (
        "emoji kept",
        [["🏗️ 甲建设有限公司 😀", "", ""]],
        Expect([("🏗️ 甲建设有限公司 😀", None, "🏗️ 甲建设有限公司 😀")]),
    ),
    (
        "bracket widths merged",
        [
            ["中铁(天津)建设有限公司", "", ""],
            ["中铁（天津）建设有限公司", "", ""],
            ["中铁【天津】建设有限公司", "", ""],
        ],
        Expect([("中铁(天津)建设有限公司", None, "中铁(天津)建设有限公司")], merged=2),
    ),
    (
        "有限公司 and 有限责任公司 differ",
        [["甲有限公司", "", ""], ["甲有限责任公司", "", ""]],
        Expect([("甲有限公司", None, "甲有限公司"), ("甲有限责任公司", None, "甲有限责任公司")]),
    ),
    (
        "duplicate fills a missing USCC",
        [["甲公司", "", ""], ["甲 公司", OK_USCC, "110108000000016"]],
        Expect([("甲公司", OK_USCC, OK_USCC)], merged=1),
    ),
    (
        "same USCC twice",
        [["甲公司", OK_USCC, ""], ["", OK_USCC, ""]],
        Expect([("甲公司", OK_USCC, OK_USCC)], merged=1),
    ),
    (
        "USCC-only row fills its name later",
        [["", OK_USCC, ""], ["甲公司", OK_USCC, ""]],
        Expect([("甲公司", OK_USCC, OK_USCC)], merged=1),
    ),
    (
        "a name with two USCCs",
        [["甲公司", OK_USCC, ""], ["乙公司", "", ""], ["甲公司", OTHER_USCC, ""]],
        Expect(
            [("乙公司", None, "乙公司")],
            [
                (
                    3,
                    "name 甲公司 appears with two different 统一社会信用代码: "
                    f"row 3 has {OK_USCC}, "
                    f"row 5 has {OTHER_USCC}",
                ),
                (
                    5,
                    "name 甲公司 appears with two different 统一社会信用代码: "
                    f"row 3 has {OK_USCC}, "
                    f"row 5 has {OTHER_USCC}",
                ),
            ],
        ),
    ),
    (
        "a USCC with two names",
        [["甲公司", OK_USCC, ""], ["乙公司", OK_USCC, ""]],
        Expect(
            rejects=[
                (
                    3,
                    f"统一社会信用代码 {OK_USCC} appears with two different company names: "
                    "row 3 has 甲公司, row 4 has 乙公司",
                ),
                (
                    4,
                    f"统一社会信用代码 {OK_USCC} appears with two different company names: "
                    "row 3 has 甲公司, row 4 has 乙公司",
                ),
            ]
        ),
    ),
    (
        "a third row of a conflict",
        [["甲公司", OK_USCC, ""], ["甲公司", OTHER_USCC, ""], ["甲公司", "", ""]],
        Expect(
            rejects=[
                (
                    r,
                    f"name 甲公司 appears with two different 统一社会信用代码: row 3 has "
                    f"{OK_USCC}, row 4 has {OTHER_USCC}",
                )
                for r in (3, 4, 5)
            ]
        ),
    ),
    ("USCC only", [["", OK_USCC, ""]], Expect([(OK_USCC, OK_USCC, OK_USCC)])),
    (
        "注册号 only",
        [["", "", "110108000000016"]],
        Expect([("110108000000016", None, "110108000000016")]),
    ),
    (
        "注册号 with a wrong check digit",
        [["甲公司", "", "110108000000017"]],
        Expect(rejects=[(3, "注册号 110108000000017 has a wrong check digit (expected 6)")]),
    ),
    (
        "注册号 not 15 digits",
        [["甲公司", "", "11010800"]],
        Expect(rejects=[(3, "注册号 11010800 is not a 15-digit 注册号")]),
    ),
    (
        "USCC typed into the 注册号 column",
        [["甲公司", "", OK_USCC]],
        Expect([("甲公司", OK_USCC, OK_USCC)]),
    ),
    (
        "no name, only other columns",
        [["", "", "", "北京市海淀区"]],
        Expect(rejects=[(3, "no company name and no valid 统一社会信用代码")]),
    ),
]


def _load(tmp_path: Path, rows: list[list[str]]) -> RosterResult:
    return load_roster(write_csv(tmp_path / "roster.csv", [[*HEADER, "地址"], GOOD, *rows]))


@pytest.mark.parametrize(("rows", "expect"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_corpus(tmp_path: Path, rows: list[list[str]], expect: Expect) -> None:
    result = _load(tmp_path, rows)
    accepted = [(e.name, e.uscc, e.query) for e in result.entries]
    assert accepted == [(GOOD[0], GOOD[1], GOOD[1]), *expect.accepted]
    assert [(r.row_number, r.reason) for r in result.rejects] == expect.rejects
    assert result.stats["duplicates_merged"] == expect.merged
    assert result.stats["total_rows"] == 1 + len(rows)
    assert result.complete


def test_entries_carry_key_shard_and_origin(tmp_path: Path) -> None:
    result = _load(tmp_path, [["中铁（天津）建设 有限公司", "", "110108000000016"]])
    good, named = result.entries
    assert good.match_key == GOOD[1] and good.shard == shard_of(GOOD[1])
    assert named.match_key == match_key("中铁(天津)建设有限公司") == "中铁(天津)建设有限公司"
    assert named.query == "中铁（天津）建设 有限公司"  # as given, cleaned, not folded
    assert (named.reg_no, named.source, named.row_number) == ("110108000000016", "roster.csv", 3)
    assert named.shard == shard_of(named.match_key)


def test_rejects_keep_the_row_as_given(tmp_path: Path) -> None:
    result = _load(tmp_path, [["坏公司", "91110000600037341N", "", "北京"]])
    (reject,) = result.rejects
    assert reject.raw_row == {
        "企业名称": "坏公司",
        "统一社会信用代码": "91110000600037341N",
        "注册号": "",
        "地址": "北京",
    }
    assert (reject.source, reject.kind) == ("roster.csv", "uscc_check")
    assert result.reasons == {"uscc_check": 1}


def test_a_long_bad_value_is_shortened_in_the_reason(tmp_path: Path) -> None:
    result = _load(tmp_path, [["甲公司", "9" * 500, ""]])
    assert result.rejects[0].reason == (
        f"统一社会信用代码 {'9' * 40}… has 500 characters; it must have 18"
    )


def test_folder_with_a_bad_file_is_incomplete(tmp_path: Path) -> None:
    folder = tmp_path / "roster"
    folder.mkdir()
    write_csv(folder / "a.csv", [HEADER, ["甲公司", OK_USCC, ""]], encoding="gbk")
    (folder / "b.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    write_xlsx(folder / "c.xlsx", {"名单": [HEADER, ["甲公司", OTHER_USCC, ""], ["丙公司"]]})
    result = load_roster(folder)
    assert [(e.source, e.name) for e in result.entries] == [("c.xlsx", "丙公司")]
    assert [(r.source, r.row_number, r.kind) for r in result.rejects] == [
        ("a.csv", 2, "conflict"),
        ("b.csv", None, "file"),
        ("c.xlsx", 2, "conflict"),
    ]
    assert result.rejects[0].reason.endswith(
        f"row 2 of a.csv has {OK_USCC}, row 2 of c.xlsx has {OTHER_USCC}"
    )
    assert result.rejects[1].reason == "b.csv: is a binary file, not a CSV text file"
    assert result.sources == ["a.csv", "b.csv", "c.xlsx"]
    assert not result.complete
    assert result.stats["files_failed"] == 1


def test_a_single_unreadable_file_is_a_reject_not_a_crash(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "roster.csv", [["序号", "地址"], ["1", "北京"]])
    result = load_roster(path)
    assert result.entries == [] and not result.complete
    assert result.rejects[0].reason.startswith("roster.csv: has no recognisable header")


def test_nothing_to_read_raises(tmp_path: Path) -> None:
    with pytest.raises(RosterFileError, match="file not found"):
        load_roster(tmp_path / "missing.csv")


def test_named_sheet(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "r.xlsx", {"A": [HEADER, ["甲公司"]], "B": [HEADER, ["乙公司"]]})
    assert [e.name for e in load_roster(path).entries] == ["甲公司"]
    assert [e.name for e in load_roster(path, sheet="B").entries] == ["乙公司"]
    assert [e.source for e in load_roster(f"{path}#B").entries] == ["r.xlsx#B"]
