"""Reading rosters as people save them: encodings, delimiters, workbooks, folders, bad files."""

from __future__ import annotations

import codecs
import zipfile
from pathlib import Path

import pytest

from pipelines.roster.reader import RosterFileError, read_roster, roster_sources
from tests.roster import HEADER, csv_bytes, write_csv, write_xlsx

ROWS = [
    HEADER,
    ["北京建工集团有限责任公司", "91110000600037341L", ""],
    ["中铁（天津）建设有限公司", "", "110108000000016"],
]


def names(path: Path | str, sheet: str | None = None) -> list[str]:
    return [row.name for row in read_roster(path, sheet)]


@pytest.mark.parametrize(
    "encoding",
    ["utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16"],
)
def test_csv_encodings_are_detected(tmp_path: Path, encoding: str) -> None:
    path = write_csv(tmp_path / "roster.csv", ROWS, encoding=encoding)
    assert names(path) == ["北京建工集团有限责任公司", "中铁（天津）建设有限公司"]


def test_gb18030_only_characters(tmp_path: Path) -> None:
    # 𠮷 is outside GBK; Excel on a GB18030 system writes it as four bytes.
    rows = [HEADER, ["𠮷野家建设有限公司", "", ""]]
    path = write_csv(tmp_path / "roster.csv", rows, encoding="gb18030")
    assert names(path) == ["𠮷野家建设有限公司"]


def test_bom_does_not_end_up_in_the_header(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "roster.csv", ROWS, encoding="utf-8-sig")
    (row, _) = read_roster(path)
    assert list(row.raw_row) == HEADER
    assert row.uscc == "91110000600037341L"


@pytest.mark.parametrize("delimiter", [",", "\t", ";", "|"])
def test_delimiters(tmp_path: Path, delimiter: str) -> None:
    path = write_csv(tmp_path / "roster.txt", ROWS, delimiter=delimiter)
    assert names(path)[0] == "北京建工集团有限责任公司"


def test_excel_unicode_text_export(tmp_path: Path) -> None:
    """Excel's "Unicode Text": UTF-16 with a BOM, tab-separated."""
    path = tmp_path / "roster.txt"
    path.write_bytes(csv_bytes(ROWS, encoding="utf-16", delimiter="\t"))
    assert names(path)[1] == "中铁（天津）建设有限公司"


def test_row_numbers_are_excel_rows(tmp_path: Path) -> None:
    rows = [["公司名单 2024"], [], HEADER, ["甲公司", "", ""], ["乙\n公司", "", ""], ["丙公司"]]
    path = write_csv(tmp_path / "roster.csv", rows)
    assert [(r.row_number, r.name) for r in read_roster(path)] == [
        (4, "甲公司"),
        (5, "乙\n公司"),
        (6, "丙公司"),
    ]


@pytest.mark.parametrize(
    "header",
    [
        ["Company Name", "USCC", "Registration Number"],
        ["company_name", "credit_code", "reg_no"],
        ["NAME", "Credit Code", "REG_NO"],
        ["公司名称", "社会信用代码", "工商注册号"],
        ["单位名称", "信用代码", "注册号"],
        ["*企业全称（必填）", " 统一社会信用代码 (18位) ", "注册号"],
        ["company", "uscc", "registration_number"],
    ],
)
def test_header_aliases(tmp_path: Path, header: list[str]) -> None:
    path = write_csv(
        tmp_path / "roster.csv", [header, ["甲公司", "91110000600037341L", "110108000000016"]]
    )
    (row,) = read_roster(path)
    assert (row.name, row.uscc, row.reg_no) == ("甲公司", "91110000600037341L", "110108000000016")


def test_extra_columns_are_kept_in_raw_row(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "roster.csv",
        [["序号", "企业名称", "地址", ""], ["1", "甲公司", "北京", "", "备注"]],
    )
    (row,) = read_roster(path)
    assert row.raw_row == {
        "序号": "1",
        "企业名称": "甲公司",
        "地址": "北京",
        "column 4": "",
        "column 5": "备注",
    }


def test_trailing_blank_rows_are_formatting(tmp_path: Path) -> None:
    """Trailing blank rows are dropped; a run of blank rows between data is one row."""
    path = write_csv(tmp_path / "roster.csv", [HEADER, ["甲公司"], [], [""], ["乙公司"], [], [" "]])
    assert [(r.row_number, r.is_blank, r.span) for r in read_roster(path)] == [
        (2, False, 1),
        (3, True, 2),
        (5, False, 1),
    ]


def test_workbook_first_sheet_by_default(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "roster.xlsx", {"说明": [["请在第二页填写"]], "名单": ROWS})
    with pytest.raises(RosterFileError, match="no recognisable header"):
        names(path)
    path = write_xlsx(tmp_path / "two.xlsx", {"名单": ROWS, "旧名单": [HEADER, ["旧公司"]]})
    assert names(path) == ["北京建工集团有限责任公司", "中铁（天津）建设有限公司"]


def test_workbook_named_sheet(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "roster.xlsx", {"名单": ROWS, "旧名单": [HEADER, ["旧公司"]]})
    assert names(path, "旧名单") == ["旧公司"]
    assert names(f"{path}#旧名单") == ["旧公司"]
    ((row,),) = [list(read_roster(f"{path}#旧名单"))]
    assert row.source == "roster.xlsx#旧名单"


def test_workbook_missing_sheet(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "roster.xlsx", {"名单": ROWS})
    with pytest.raises(
        RosterFileError,
        match=r"roster\.xlsx#其他: has no sheet named '其他'; "
        r"its sheets are '名单'",
    ):
        names(path, "其他")


def test_workbook_cells_and_row_numbers(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "roster.xlsx",
        {
            "名单": [
                ["企业名单"],
                [None],
                HEADER,
                ["甲公司", None, 110108000000016],
                [None, None, None],
                [" 乙公司 ", "91110000600037341L", None],
            ]
        },
    )
    rows = list(read_roster(path))
    assert [(r.row_number, r.name, r.reg_no) for r in rows] == [
        (4, "甲公司", "110108000000016"),
        (5, "", ""),
        (6, " 乙公司 ", ""),
    ]


def test_folder_reads_each_file_as_a_source(tmp_path: Path) -> None:
    folder = tmp_path / "roster"
    folder.mkdir()
    write_csv(folder / "b.csv", [HEADER, ["乙公司"]], encoding="gbk")
    write_xlsx(folder / "a.xlsx", {"Sheet1": [HEADER, ["甲公司"]]})
    write_csv(folder / "~$a.xlsx", [HEADER, ["lock file"]])
    (folder / "readme.md").write_text("not a roster")
    (folder / "sub").mkdir()
    write_csv(folder / "sub" / "c.csv", [HEADER, ["nested"]])
    assert [s.label for s in roster_sources(folder)] == ["a.xlsx", "b.csv"]
    assert [(r.source, r.row_number, r.name) for r in read_roster(folder)] == [
        ("a.xlsx", 2, "甲公司"),
        ("b.csv", 2, "乙公司"),
    ]


def _zip_named_csv(path: Path) -> Path:
    write_xlsx(path.with_suffix(".xlsx"), {"S": ROWS}).rename(path)
    return path


FILE_PROBLEMS = [
    ("empty.csv", lambda p: p.write_bytes(b""), "empty.csv: is empty (0 bytes)"),
    ("blank.csv", lambda p: p.write_text("\n \n,,\n"), "blank.csv: is empty (no rows)"),
    (
        "cols.csv",
        lambda p: write_csv(p, [["序号", "地址"], ["1", "北京"]]),
        "cols.csv: has no recognisable header: found columns 序号, 地址",
    ),
    (
        "prose.csv",
        lambda p: p.write_text("这不是名单。\n只是一段文字。\n"),
        "prose.csv: has no recognisable header: found columns 这不是名单。",
    ),
    (
        "image.csv",
        lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)),
        "image.csv: is a binary file, not a CSV text file",
    ),
    ("book.csv", _zip_named_csv, "book.csv: is a zip file"),
    (
        "old.csv",
        lambda p: p.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512)),
        "old.csv: is an old Excel 97-2003 workbook",
    ),
    ("fake.xlsx", lambda p: write_csv(p, ROWS), "fake.xlsx: is not a valid .xlsx workbook"),
    (
        "broken.xlsx",
        lambda p: zipfile.ZipFile(p, "w").writestr("x.txt", "x"),
        "broken.xlsx: is not a readable .xlsx workbook",
    ),
    (
        "old.xls",
        lambda p: p.write_bytes(b"\xd0\xcf\x11\xe0" + bytes(64)),
        "old.xls: is an old Excel 97-2003 .xls workbook",
    ),
    ("roster.json", lambda p: p.write_text("[]"), "roster.json: has the extension .json"),
    (
        "latin.csv",
        lambda p: p.write_bytes(codecs.encode("name\nCafé Ölfirma GmbH\n", "latin-1")),
        None,
    ),
]


@pytest.mark.parametrize(
    ("filename", "make", "message"), FILE_PROBLEMS, ids=[case[0] for case in FILE_PROBLEMS]
)
def test_file_problems_name_the_file(
    tmp_path: Path, filename: str, make: object, message: str | None
) -> None:
    path = tmp_path / filename
    make(path)  # type: ignore[operator]
    if message is None:  # read, in whatever encoding fits best; nothing raised
        assert len(list(read_roster(path))) == 1
        return
    with pytest.raises(RosterFileError) as error:
        list(read_roster(path))
    assert str(error.value).startswith(message)


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(RosterFileError, match=r"nowhere\.csv: file not found"):
        roster_sources(tmp_path / "nowhere.csv")
    with pytest.raises(RosterFileError, match=r"folder holds no \.csv or \.xlsx file"):
        roster_sources(tmp_path)
