"""Hostile rosters: large, sparse or crafted files are read within bounds or refused clearly.

Each test fails when its protection is removed. Memory is asserted as a generous tracemalloc peak
(what Python allocated), never a time: the unprotected code needs hundreds of megabytes.
"""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipelines.roster import reader
from pipelines.roster.reader import (
    EXCEL_MAX_ROWS,
    MAX_HEADER_CELL,
    RosterFileError,
    RosterLimits,
    column_labels,
    read_roster,
)
from pipelines.roster.validate import load_roster
from tests.roster import (
    HEADER,
    corrupt_member,
    rewrite_member,
    write_csv,
    write_sheet_xml,
    write_xlsx,
)

MiB = 1 << 20
USCC = "91110000600037341L"


@contextmanager
def peak_memory() -> Iterator[list[int]]:
    """Yields a list that holds, after the block, the peak bytes Python allocated in it."""
    tracemalloc.start()
    peak: list[int] = []
    try:
        yield peak
    finally:
        peak.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


def peak_rss_growth(code: str, *args: str) -> int:
    """Bytes by which a fresh Python's peak RSS grows while it runs `code` (after the imports):
    a child process of its own, so neither this process's heap nor another test counts."""
    script = textwrap.dedent(
        """
        import resource, sys
        from pipelines.roster.validate import load_roster
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        {code}
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
        """
    ).format(code=code)
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, check=True
    )
    return int(done.stdout.split()[-1])


def file_rejects(result: object) -> list[str]:
    return [r.reason for r in result.rejects if r.kind == "file"]  # type: ignore[attr-defined]


# --- sparse workbooks ------------------------------------------------------------------------


def test_rows_far_apart_are_two_rows_and_one_gap(tmp_path: Path) -> None:
    """Rows 1, 2 and 600000: two companies and one reject for the gap, in a few megabytes
    (held one by one, the 599,997 blank rows and their rejects took ~300 MB)."""
    path = write_sheet_xml(
        tmp_path / "sparse.xlsx", {1: HEADER, 2: ["甲公司", USCC], 600_000: ["乙公司"]}
    )
    result = load_roster(path)
    assert [(e.name, e.row_number) for e in result.entries] == [("甲公司", 2), ("乙公司", 600_000)]
    assert [(r.row_number, r.reason) for r in result.rejects] == [
        (3, "599,997 empty rows (rows 3 to 599999)")
    ]
    assert result.stats["total_rows"] == 599_999
    growth = peak_rss_growth("assert len(load_roster(sys.argv[1]).rejects) == 1", str(path))
    assert growth < 64 * MiB, f"peak RSS grew by {growth / MiB:.0f} MiB"


def test_trailing_gap_costs_nothing(tmp_path: Path) -> None:
    """A lone formatted cell far below the data (Excel's "used range") is not a row at all."""
    path = write_sheet_xml(tmp_path / "tail.xlsx", {1: HEADER, 2: ["甲公司"], 900_000: [" "]})
    result = load_roster(path)
    assert [e.name for e in result.entries] == ["甲公司"]
    assert result.rejects == [] and result.complete


def test_a_row_below_excels_last_row_is_refused(tmp_path: Path) -> None:
    """openpyxl hands over every row number up to the next present row, so a crafted number
    (r="2000000000") would make us walk two billion empty rows: reading stops past Excel's
    last row (shown here one row past it, so the unprotected code fails fast, not slowly)."""
    path = write_sheet_xml(
        tmp_path / "deep.xlsx", {1: HEADER, 2: ["甲公司"], EXCEL_MAX_ROWS + 1: ["乙公司"]}
    )
    result = load_roster(path)
    assert [e.name for e in result.entries] == ["甲公司"]
    assert file_rejects(result) == [
        f"deep.xlsx: has a row below row {EXCEL_MAX_ROWS:,}, the last row of an Excel sheet; "
        "the rows above it were read"
    ]
    assert not result.complete


def test_a_claimed_used_range_does_not_fill_the_sheet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A <dimension> claiming A1:XFD1048576 is ignored: openpyxl would otherwise hand over every
    row, present or not, 16,384 cells wide (counted here as the cells we convert to text)."""
    converted: list[object] = []
    original = reader._cell_text

    def cell_text(value: object) -> str:
        converted.append(value)
        return original(value)

    monkeypatch.setattr(reader, "_cell_text", cell_text)
    path = write_sheet_xml(
        tmp_path / "claims.xlsx",
        {1: HEADER, 2: ["甲公司"], 50: ["乙公司"]},
        dimension="A1:XFD1048576",
    )
    result = load_roster(path)
    assert [e.name for e in result.entries] == ["甲公司", "乙公司"]
    assert len(converted) <= 10


# --- wide headers --------------------------------------------------------------------------


def wide_header(columns: int) -> list[str]:
    return [f"c{i}" for i in range(columns - 1)] + ["企业名称"]


def test_a_20000_column_header_is_refused_naming_the_setting(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "wide.csv", [wide_header(20_000), [""] * 19_999 + ["甲公司"]])
    result = load_roster(path)
    assert result.entries == []
    assert file_rejects(result) == [
        "wide.csv: row 1 has a value in column 20,000; a roster may use at most 500 columns "
        "(ZIZHI_ROSTER_MAX_COLUMNS=500); the rows before it were read"
    ]


def test_a_20000_column_header_is_read_when_the_cap_allows_it(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "wide.csv", [wide_header(20_000), [""] * 19_999 + ["甲公司"]])
    (row,) = read_roster(path, limits=RosterLimits(max_columns=20_000))
    assert row.name == "甲公司" and len(row.raw_row) == 20_000


class CountingStr(str):
    """A header cell that counts the comparisons and hashes made with it."""

    operations = 0

    def strip(self, chars: str | None = None) -> CountingStr:
        return CountingStr(super().strip(chars))

    def __eq__(self, other: object) -> bool:
        CountingStr.operations += 1
        return super().__eq__(other)

    def __hash__(self) -> int:
        CountingStr.operations += 1
        return super().__hash__()


@pytest.mark.parametrize("columns", [2_000, 20_000])
def test_header_labels_take_linear_work(columns: int) -> None:
    """Finding repeated header names is a set lookup per column, not a scan of the labels so far
    (which makes ~n²/2 comparisons: 200 million for 20,000 columns)."""
    CountingStr.operations = 0
    cells = [CountingStr(f"c{i}") for i in range(columns)]
    labels = column_labels(cells)
    assert labels[-1] == f"c{columns - 1}"
    assert CountingStr.operations <= 3 * columns


def test_repeated_and_blank_header_names_get_column_numbers() -> None:
    assert column_labels(["a", "", "a", "a (column 3)", " b "]) == [
        "a",
        "column 2",
        "a (column 3)",
        "a (column 3) (column 4)",
        "b",
    ]


def test_a_huge_header_cell_is_never_folded(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The header folding regex never sees a hostile megabyte cell (its `\\(.*?\\)` is quadratic
    on a run of `(`): no alias is longer than MAX_HEADER_CELL characters."""
    folded: list[int] = []
    original = reader.header_token

    def header_token(cell: str) -> str:
        folded.append(len(cell))
        return original(cell) if len(cell) <= MAX_HEADER_CELL else ""

    monkeypatch.setattr(reader, "header_token", header_token)
    path = write_csv(tmp_path / "parens.csv", [["(" * 100_000, "企业名称"], ["x", "甲公司"]])
    assert [row.name for row in read_roster(path)] == ["甲公司"]
    assert max(folded) <= MAX_HEADER_CELL


# --- corrupt workbooks ---------------------------------------------------------------------


SHEET = "xl/worksheets/sheet1.xml"
INFLATE_ERROR = "error: Error -3 while decompressing data: invalid block type"


def _long_sheet(path: Path) -> Path:
    """3,000 rows, their used range declared (so openpyxl does not read ahead for it)."""
    rng = random.Random(7)
    rows = {1: HEADER, **{n: [f"公司{rng.randrange(10**9)}"] for n in range(2, 3001)}}
    return write_sheet_xml(path, rows, dimension="A1:C3000")


CORRUPT_WORKBOOKS: dict[str, tuple[Callable[[Path], object], str, int]] = {
    "deflate stream of the sheet": (
        lambda p: corrupt_member(write_xlsx(p, {"名单": [HEADER, ["甲公司"]]}), SHEET),
        f"bad.xlsx: is not a readable .xlsx workbook ({INFLATE_ERROR})",
        0,
    ),
    "deflate stream of the workbook part": (
        lambda p: corrupt_member(write_xlsx(p, {"名单": [HEADER, ["甲公司"]]}), "xl/workbook.xml"),
        f"bad.xlsx: is not a readable .xlsx workbook ({INFLATE_ERROR})",
        0,
    ),
    "deflate stream damaged halfway": (
        lambda p: corrupt_member(_long_sheet(p), SHEET, at=0.5),
        "bad.xlsx: could not be read completely (",
        1,  # rows before the damage were read: some of them are kept
    ),
    "shared string that does not exist": (
        lambda p: rewrite_member(
            write_sheet_xml(p, {1: HEADER, 2: ["甲公司"], 3: ["乙公司"]}),
            SHEET,
            '<c r="A3" t="inlineStr"><is><t>乙公司</t></is></c>'.encode(),
            b'<c r="A3" t="s"><v>7</v></c>',
        ),
        "bad.xlsx: could not be read completely (IndexError: list index out of range); "
        "the rows before it were read",
        1,
    ),
}


@pytest.mark.parametrize("case", list(CORRUPT_WORKBOOKS))
def test_a_corrupt_workbook_is_one_reject_and_the_other_files_are_read(
    tmp_path: Path, case: str
) -> None:
    make, message, kept_from_bad = CORRUPT_WORKBOOKS[case]
    folder = tmp_path / "roster"
    folder.mkdir()
    make(folder / "bad.xlsx")
    write_csv(folder / "good.csv", [HEADER, ["乙公司", USCC]])
    write_xlsx(folder / "more.xlsx", {"名单": [HEADER, ["丙公司"]]})
    result = load_roster(folder)
    sources = [e.source for e in result.entries]
    assert sources.count("good.csv") == sources.count("more.xlsx") == 1
    assert bool(sources.count("bad.xlsx")) == bool(kept_from_bad)
    (reason,) = file_rejects(result)
    assert reason.startswith(message) if message.endswith("(") else reason == message
    assert not result.complete  # nothing is deactivated on the strength of a partial read


# --- long lines ----------------------------------------------------------------------------


LONG_LINES = {
    "ascii": b"a" * (50 * MiB),
    # Neither UTF-8 nor GB18030: the encoding is guessed from a sample, not the whole file.
    "unknown encoding": b"\xe9\xff " * (50 * MiB // 3),
}


@pytest.mark.parametrize("kind", list(LONG_LINES))
def test_a_50_mb_line_is_refused_in_bounded_memory(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "long.csv"
    with path.open("wb") as file:
        file.write("企业名称,统一社会信用代码\r\n甲公司,\r\n".encode())
        file.write(LONG_LINES[kind])
        file.write("\r\n乙公司,\r\n".encode())
    with peak_memory() as peak:
        result = load_roster(path)
    assert peak[0] < 24 * MiB, f"peak {peak[0] / MiB:.0f} MiB"
    (reason,) = file_rejects(result)
    assert reason.startswith("long.csv: ")
    if kind == "ascii":
        assert [e.name for e in result.entries] == ["甲公司"]
        assert reason == (
            "long.csv: row 3 is longer than 1,048,576 bytes, the most "
            "ZIZHI_ROSTER_MAX_LINE_BYTES=1048576 allows (is this a roster?); "
            "the rows before it were read"
        )
    assert len(reason) < 400


def test_the_line_limit_counts_bytes_in_the_files_encoding(tmp_path: Path) -> None:
    """40 Chinese characters are 40 characters but 120 bytes of UTF-8 (and 80 of GBK)."""
    rows = [HEADER, ["甲" * 40 + "公司"]]
    limits = RosterLimits(max_line_bytes=100)
    with pytest.raises(RosterFileError, match="row 2 is longer than 100 bytes"):
        list(read_roster(write_csv(tmp_path / "utf8.csv", rows), limits=limits))
    gbk = write_csv(tmp_path / "gbk.csv", rows, encoding="gbk")
    assert [r.name for r in read_roster(gbk, limits=limits)] == ["甲" * 40 + "公司"]


def test_the_line_limit_counts_a_quoted_field_over_many_lines(tmp_path: Path) -> None:
    """A quoted field may hold line breaks; one row of many short lines is still one row."""
    path = tmp_path / "quoted.csv"
    path.write_text('企业名称\r\n甲公司\r\n"' + "x\r\n" * 100 + '"\r\n', encoding="utf-8")
    with pytest.raises(RosterFileError, match=r"row 3 is longer than 200 bytes"):
        list(read_roster(path, limits=RosterLimits(max_line_bytes=200)))


@pytest.mark.parametrize(("lines", "refused"), [(8, False), (9, True)])
def test_the_line_limit_counts_every_byte_of_a_row_of_short_non_ascii_lines(
    tmp_path: Path, lines: int, refused: bool
) -> None:
    """Each line is far below the limit, so its bytes are only bounded when it is read; the
    row's lines still add up exactly: 12 + 11 * (lines - 1) + 3 bytes of UTF-8 (92, then 103)."""
    path = tmp_path / "quoted.csv"
    path.write_text('企业名称\r\n甲公司\r\n"' + "甲甲甲\r\n" * lines + '"\r\n', encoding="utf-8")
    limits = RosterLimits(max_line_bytes=100)
    if refused:
        with pytest.raises(RosterFileError, match=r"row 3 is longer than 100 bytes"):
            list(read_roster(path, limits=limits))
    else:
        assert len(list(read_roster(path, limits=limits))) == 2


# --- row and column caps -------------------------------------------------------------------


def test_the_row_cap_counts_rows_with_data_across_files(tmp_path: Path) -> None:
    folder = tmp_path / "roster"
    folder.mkdir()
    write_csv(folder / "a.csv", [HEADER, ["甲公司"], [], [], ["乙公司"]])
    write_csv(folder / "b.csv", [HEADER, ["丙公司"], ["丁公司"]])
    write_csv(folder / "c.csv", [HEADER, ["戊公司"]])
    result = load_roster(folder, limits=RosterLimits(max_rows=3))
    assert [e.name for e in result.entries] == ["甲公司", "乙公司", "丙公司"]
    message = (
        ": the roster has more than 3 rows with data, the most ZIZHI_ROSTER_MAX_ROWS=3 allows; "
        "this row and the rest of the file were not read"
    )
    assert file_rejects(result) == [f"b.csv: row 3{message}", f"c.csv: row 2{message}"]
    assert not result.complete


def test_the_column_cap_ignores_blank_formatted_cells(tmp_path: Path) -> None:
    """Excel writes styled empty cells far to the right; only a value past the cap counts."""
    path = write_sheet_xml(
        tmp_path / "styled.xlsx",
        {1: [*HEADER, *[""] * 40, " "], 2: ["甲公司", "", "", *[""] * 40, " "], 3: ["乙公司"]},
    )
    limits = RosterLimits(max_columns=10)
    assert [r.name for r in read_roster(path, limits=limits)] == ["甲公司", "乙公司"]
    wide = write_csv(tmp_path / "wide.csv", [HEADER, ["甲公司"], ["乙公司", *[""] * 9, "备注"]])
    result = load_roster(wide, limits=limits)
    assert [e.name for e in result.entries] == ["甲公司"]
    assert file_rejects(result) == [
        "wide.csv: row 3 has a value in column 11; a roster may use at most 10 columns "
        "(ZIZHI_ROSTER_MAX_COLUMNS=10); the rows before it were read"
    ]


# --- what is echoed ------------------------------------------------------------------------


def test_a_headerless_file_is_echoed_as_a_short_escaped_prefix(tmp_path: Path) -> None:
    first_line = "\x1b[31m警告\u202e" + "数据" * 5_000
    path = write_csv(tmp_path / "noheader.csv", [[first_line, "x"], ["甲公司", "y"]])
    (reason,) = file_rejects(load_roster(path))
    shown = reason.split("found columns ", 1)[1].split(";", 1)[0]
    assert shown == "\\x1b[31m警告\\u202e" + "数据" * 26 + "…"  # 60 characters, escaped
    assert "\x1b" not in reason and "\u202e" not in reason
    assert len(reason) < 300


def test_sheet_names_listed_in_a_message_are_bounded(tmp_path: Path) -> None:
    sheets = {f"\u202e表{i:03d}" + "长" * 26: [HEADER] for i in range(30)}  # 31 characters
    path = write_xlsx(tmp_path / "many.xlsx", sheets)
    with pytest.raises(RosterFileError) as error:
        list(read_roster(path, "名单"))
    message = str(error.value)
    assert "\u202e" not in message and "and 20 more" in message
    assert len(message) < 1000


@pytest.mark.parametrize("name", ["=1+1", "+86 建设有限公司", "-1 建设有限公司", "@SUM(A1)"])
def test_formula_like_cells_are_read_as_text(tmp_path: Path, name: str) -> None:
    """A cell starting with = + - @ is a name like any other; it is escaped only on output."""
    csv_path = write_csv(tmp_path / "roster.csv", [HEADER, [name]])
    xlsx_path = write_sheet_xml(tmp_path / "roster.xlsx", {1: HEADER, 2: [name]})
    assert [e.name for e in load_roster(csv_path).entries] == [name]
    assert [e.name for e in load_roster(xlsx_path).entries] == [name]
