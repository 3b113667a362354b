"""Read a roster as rows of strings: CSV (UTF-8, BOM, GBK/GB18030, UTF-16), XLSX, or a folder.

Rows are streamed, never loaded whole. Each row carries its source (the file name, plus
`#Sheet` for workbooks) and the row number a person sees in Excel (the header is usually row 1).
Anything that stops a file from being read raises `RosterFileError` naming the file and the
problem in plain words; the caller records it and moves on to the next file.

A roster can be large, sparse or crafted, so reading is bounded (`RosterLimits`, from the
`ZIZHI_ROSTER_MAX_*` settings): a CSV line is never read past `max_line_bytes`, a row may use
`max_columns` columns, a run of blank rows (a sheet with rows 1 and 600000) is one row, and file
content quoted in a message is a short prefix with invisible characters escaped.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import re
import unicodedata
import zipfile
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import charset_normalizer
import openpyxl

from pipelines.settings import (
    DEFAULT_ROSTER_MAX_COLUMNS,
    DEFAULT_ROSTER_MAX_LINE_BYTES,
    DEFAULT_ROSTER_MAX_ROWS,
    Settings,
)

TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")
FOLDER_SUFFIXES = (".csv", ".tsv", ".xlsx", ".xlsm")
HEADER_SCAN_ROWS = 10  # title lines above the header are common in exported workbooks
DELIMITERS = (",", "\t", ";", "|")
_CHUNK = 1 << 20
# The encoding of a file that is neither UTF-8 nor GB18030 is guessed from its first megabyte.
GUESS_BYTES = 1 << 20
EXCEL_MAX_ROWS = 1_048_576  # the last row of an Excel sheet; a row beyond it is a crafted file
MAX_HEADER_CELL = 64  # a longer cell is no column name (the aliases are a few characters long)
SHOWN_CHARS = 60  # longest prefix of file content quoted in a message

FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "name": (
        "企业名称",
        "公司名称",
        "单位名称",
        "企业全称",
        "name",
        "company",
        "company_name",
        "company name",
    ),
    "uscc": ("统一社会信用代码", "信用代码", "社会信用代码", "uscc", "credit_code", "credit code"),
    "reg_no": ("注册号", "工商注册号", "reg_no", "registration_number", "registration number"),
}


@dataclass(frozen=True, slots=True)
class RosterLimits:
    """How much of a roster is read; the messages name the setting that raises each limit."""

    max_rows: int = DEFAULT_ROSTER_MAX_ROWS  # rows with data, all files together
    max_columns: int = DEFAULT_ROSTER_MAX_COLUMNS
    max_line_bytes: int = DEFAULT_ROSTER_MAX_LINE_BYTES  # one CSV row, in the file's encoding

    @classmethod
    def from_settings(cls, settings: Settings) -> RosterLimits:
        return cls(
            settings.roster_max_rows, settings.roster_max_columns, settings.roster_max_line_bytes
        )


def shown(text: str, limit: int = SHOWN_CHARS) -> str:
    """File content for a message: at most `limit` characters, control and format characters
    (line breaks, ANSI escapes, bidi overrides) written as escapes, other spacing as a space."""
    head = "".join(_shown_char(ch) for ch in text[:limit])
    return head + ("…" if len(text) > limit else "")


def _shown_char(ch: str) -> str:
    if ch.isprintable():
        return ch
    return " " if unicodedata.category(ch) == "Zs" else repr(ch)[1:-1]


class RosterFileError(Exception):
    """A roster file that cannot be read (fully); the message names the file and the problem."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


@dataclass(frozen=True, slots=True)
class RosterRow:
    """One data row: the recognised fields as given and every cell under its header."""

    source: str
    row_number: int
    raw_row: dict[str, str]
    name: str
    uscc: str
    reg_no: str
    span: int = 1  # rows it stands for: a run of blank rows is one row

    @property
    def is_blank(self) -> bool:
        return not any(map(str.strip, self.raw_row.values()))


@dataclass(frozen=True, slots=True)
class RosterSource:
    """One readable unit of a roster: a text file or one sheet of a workbook."""

    path: Path
    sheet: str | None = None

    @property
    def label(self) -> str:
        return f"{self.path.name}#{self.sheet}" if self.sheet else self.path.name


def roster_sources(path: str | Path, sheet: str | None = None) -> list[RosterSource]:
    """The files a roster path stands for: the file itself, or a folder's roster files, sorted.

    `path` may end in `#SheetName` to pick a workbook's sheet. Raises RosterFileError when the
    path does not exist or a folder holds no roster file: there is nothing to read at all.
    """
    target = Path(path)
    if not target.exists() and "#" in str(path):
        base, _, named = str(path).rpartition("#")
        if Path(base).is_file():
            target, sheet = Path(base), named
    if target.is_dir():
        files = [
            p
            for p in sorted(target.iterdir())
            if p.is_file()
            and p.suffix.lower() in FOLDER_SUFFIXES
            and not p.name.startswith(("~$", "."))  # Excel lock files, hidden files
        ]
        if not files:
            raise RosterFileError(str(target), "folder holds no .csv or .xlsx file")
        return [RosterSource(p, sheet if _is_workbook(p) else None) for p in files]
    if not target.exists():
        raise RosterFileError(str(target), "file not found")
    return [RosterSource(target, sheet)]


def read_source(
    source: RosterSource, limits: RosterLimits | None = None
) -> Generator[RosterRow, None, None]:
    """Stream the data rows of one file or sheet (raises RosterFileError while iterating)."""
    limits = limits or RosterLimits()
    yield from _records(source.label, _numbered_rows(source, limits), limits.max_columns)


def read_roster(
    path: str | Path, sheet: str | None = None, limits: RosterLimits | None = None
) -> Iterator[RosterRow]:
    """Every data row of a roster path; the first file error stops the iteration."""
    for source in roster_sources(path, sheet):
        yield from read_source(source, limits)


def _is_workbook(path: Path) -> bool:
    return path.suffix.lower() in WORKBOOK_SUFFIXES


def _numbered_rows(source: RosterSource, limits: RosterLimits) -> Iterator[tuple[int, list[str]]]:
    path, suffix = source.path, source.path.suffix.lower()
    label = source.label
    if not path.is_file():
        raise RosterFileError(label, "is not a file")
    if path.stat().st_size == 0:
        raise RosterFileError(label, "is empty (0 bytes)")
    if _is_workbook(path):
        return _workbook_rows(path, source.sheet, label)
    if source.sheet:
        raise RosterFileError(label, f"a sheet name (#{source.sheet}) applies to .xlsx files only")
    if suffix in TEXT_SUFFIXES:
        return _text_rows(path, label, limits.max_line_bytes)
    if suffix == ".xls":
        raise RosterFileError(
            label,
            "is an old Excel 97-2003 .xls workbook; save it as .xlsx "
            "or CSV (UTF-8) and point the roster at that file",
        )
    raise RosterFileError(
        label,
        f"has the extension {suffix or '(none)'}; a roster is a .csv, "
        ".tsv, .txt or .xlsx file, or a folder of them",
    )


# --- text files ---------------------------------------------------------------------------


def detect_encoding(path: Path, label: str | None = None) -> str:
    """BOM → utf-8-sig/utf-16; else strict UTF-8; else GB18030 (covers GBK); else a guess."""
    label = label or path.name
    with path.open("rb") as file:
        head = file.read(8192)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in head:
        raise RosterFileError(label, _binary_problem(head))
    for encoding in ("utf-8", "gb18030"):
        if _decodes(path, encoding):
            return encoding
    with path.open("rb") as file:
        sample = file.read(GUESS_BYTES)  # never the whole file: it may be one 50 MB line
    best = charset_normalizer.from_bytes(sample).best()
    if best is None:
        raise RosterFileError(
            label,
            "is not text in any encoding we know (tried UTF-8, GBK/GB18030); save it as CSV UTF-8",
        )
    return best.encoding


def _binary_problem(head: bytes) -> str:
    if head.startswith(b"PK\x03\x04"):
        return "is a zip file (an .xlsx workbook saved under a text name?); rename it to .xlsx"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "is an old Excel 97-2003 workbook; save it as .xlsx or CSV (UTF-8)"
    return "is a binary file, not a CSV text file"


def _decodes(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    with path.open("rb") as file:
        try:
            while chunk := file.read(_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _delimiter(sample: str) -> str:
    """The delimiter of the first non-blank line: the candidate that occurs most (`,` on a tie)."""
    first = next((line for line in sample.splitlines() if line.strip()), "")
    counts = {d: first.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


class _RowTooLong(Exception):
    """A CSV row went past the byte limit; raised through csv.reader to `_text_rows`."""


# Encodings in which a character is at most 4 bytes, and a BOM (written by encode()) at most 4.
_BOUNDED_ENCODINGS = frozenset({"utf-8", "utf-8-sig", "utf-16", "gb18030"})


class _BoundedLines:
    """A text file's lines for csv.reader, refusing a row longer than `limit` bytes.

    `readline(limit + 1)` stops at limit + 1 characters, each at least one byte, so a 50 MB line
    is refused after reading about `limit` of it. A quoted field may span lines: the bytes of all
    lines of one row count (`row_done` starts the next row).

    A non-ASCII line is encoded to count its bytes only when it could be over the limit: in the
    common encodings 4 bytes a character (and a BOM) bound it, and a roster line is far below.
    The row is refused at the same line either way.
    """

    def __init__(self, file: TextIO, encoding: str, limit: int) -> None:
        self._file, self._encoding, self._limit = file, encoding, limit
        self._ascii_bytes = len("aa".encode(encoding)) - len("a".encode(encoding))  # BOM-free
        self._bounded = codecs.lookup(encoding).name in _BOUNDED_ENCODINGS
        self._row_bytes = 0
        self._unsized = ""  # a line of this row whose bytes are only bounded so far

    def __iter__(self) -> _BoundedLines:
        return self

    def __next__(self) -> str:
        line = self._file.readline(self._limit + 1)
        if not line:
            raise StopIteration
        if self._unsized:  # the row goes on past a line only bounded: count that line now
            self._row_bytes += self._bytes(self._unsized)
            self._unsized = ""
        if line.isascii():
            self._row_bytes += len(line) * self._ascii_bytes
        elif self._bounded and self._row_bytes + 4 * len(line) + 4 <= self._limit:
            self._unsized = line
        else:
            self._row_bytes += self._bytes(line)
        if self._row_bytes > self._limit:
            raise _RowTooLong
        return line

    def _bytes(self, line: str) -> int:
        return len(line.encode(self._encoding, errors="replace"))

    def row_done(self) -> None:
        self._row_bytes = 0
        self._unsized = ""


def _text_rows(path: Path, label: str, max_line_bytes: int) -> Iterator[tuple[int, list[str]]]:
    encoding = detect_encoding(path, label)
    with path.open(encoding=encoding, newline="") as file:
        delimiter = _delimiter(file.read(65536))
    number = 0
    try:
        with path.open(encoding=encoding, newline="") as file:
            lines = _BoundedLines(file, encoding, max_line_bytes)
            for number, cells in enumerate(csv.reader(lines, delimiter=delimiter), start=1):
                lines.row_done()
                yield number, cells
    except _RowTooLong:
        raise RosterFileError(
            label,
            f"row {number + 1} is longer than {max_line_bytes:,} bytes, the most "
            f"ZIZHI_ROSTER_MAX_LINE_BYTES={max_line_bytes} allows (is this a roster?); "
            "the rows before it were read",
        ) from None
    except (csv.Error, UnicodeDecodeError) as error:
        raise RosterFileError(
            label,
            f"row {number + 1} could not be read ({shown(str(error))}); "
            "the rows before it were read",
        ) from error


# --- workbooks ----------------------------------------------------------------------------
#
# A damaged or crafted workbook makes openpyxl raise almost anything: zipfile.BadZipFile (bad
# CRC), zlib.error (corrupt deflate stream), EOFError (truncated member), NotImplementedError
# (Deflate64), RuntimeError (encrypted member), ParseError, KeyError (missing part), ValueError,
# CellCoordinatesException... Whatever it is, that one file cannot be read: it becomes the
# file's RosterFileError and the other roster files are still read.


def _problem(error: Exception) -> str:
    return f"{type(error).__name__}: {shown(str(error), 120)}"


def _workbook_rows(path: Path, sheet: str | None, label: str) -> Iterator[tuple[int, list[str]]]:
    if not zipfile.is_zipfile(path):
        raise RosterFileError(
            label,
            "is not a valid .xlsx workbook (not a zip file); if it is a CSV, give it a .csv name",
        )
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # see above
        raise RosterFileError(
            label, f"is not a readable .xlsx workbook ({_problem(error)})"
        ) from error
    try:
        worksheet = _pick_sheet(workbook, sheet, label)
        worksheet.reset_dimensions()  # some writers record a wrong used range; read everything
        # openpyxl yields a row for every row number, present or not: bound the row numbers.
        for number, values in enumerate(worksheet.iter_rows(values_only=True), start=1):
            if number > EXCEL_MAX_ROWS:
                raise RosterFileError(
                    label,
                    f"has a row below row {EXCEL_MAX_ROWS:,}, the last row of an Excel sheet; "
                    "the rows above it were read",
                )
            yield number, [_cell_text(v) for v in values]
    except RosterFileError:
        raise
    except Exception as error:  # see above
        raise RosterFileError(
            label,
            f"could not be read completely ({_problem(error)}); the rows before it were read",
        ) from error
    finally:
        workbook.close()


def _pick_sheet(workbook: openpyxl.Workbook, sheet: str | None, label: str):  # type: ignore[no-untyped-def]
    names = workbook.sheetnames
    if sheet is None:
        if not workbook.worksheets:
            raise RosterFileError(label, "has no worksheet")
        return workbook.worksheets[0]
    if sheet not in names:
        listed = ", ".join(repr(shown(n, 40)) for n in names[:10])
        more = f" and {len(names) - 10} more" if len(names) > 10 else ""
        raise RosterFileError(label, f"has no sheet named {sheet!r}; its sheets are {listed}{more}")
    return workbook[sheet]


def _cell_text(value: object) -> str:
    """A cell as the text a person sees: integral numbers without `.0`, dates in ISO form."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)


# --- header and records -------------------------------------------------------------------

_HEADER_NOISE = re.compile(r"\(.*?\)|[\s_\-*:]")


def header_token(cell: str) -> str:
    """A header cell folded for alias lookup: case, spaces, `_`, `*` and `(必填)` notes ignored."""
    return _HEADER_NOISE.sub("", unicodedata.normalize("NFKC", cell).lower())


_ALIAS_FIELD = {
    header_token(alias): field for field, aliases in FIELD_ALIASES.items() for alias in aliases
}


def _header_fields(cells: list[str]) -> dict[str, int]:
    """field → column index of the first column whose header is one of the field's aliases.

    A cell longer than MAX_HEADER_CELL is skipped unexamined: no alias is that long, and the
    folding regex must never see a hostile megabyte-long cell.
    """
    found: dict[str, int] = {}
    for index, cell in enumerate(cells):
        if len(cell) > MAX_HEADER_CELL:
            continue
        field = _ALIAS_FIELD.get(header_token(cell))
        if field and field not in found:
            found[field] = index
    return found


def column_labels(cells: Sequence[str]) -> list[str]:
    """Column labels for raw_row: the header text, or `column N` where it is blank or repeated.

    Linear in the number of cells (repeats are found in a set): a header may be 20,000 wide.
    """
    labels: list[str] = []
    seen: set[str] = set()
    for index, cell in enumerate(cells, start=1):
        label = cell.strip() or f"column {index}"
        if label in seen:
            label = f"{label} (column {index})"
        seen.add(label)
        labels.append(label)
    return labels


def _fit_columns(label: str, number: int, cells: list[str], limit: int) -> list[str]:
    """The row's cells up to `limit`; blank cells past it (Excel formatting) are dropped."""
    if len(cells) <= limit:
        return cells
    for index in range(len(cells) - 1, limit - 1, -1):
        if cells[index].strip():
            raise RosterFileError(
                label,
                f"row {number} has a value in column {index + 1:,}; a roster may use at most "
                f"{limit:,} columns (ZIZHI_ROSTER_MAX_COLUMNS={limit}); "
                "the rows before it were read",
            )
    return cells[:limit]


def _fitted(
    label: str, numbered: Iterable[tuple[int, list[str]]], limit: int
) -> Iterator[tuple[int, list[str]]]:
    for number, cells in numbered:
        yield number, (cells if len(cells) <= limit else _fit_columns(label, number, cells, limit))


def _find_header(
    label: str, rows: Iterator[tuple[int, list[str]]]
) -> tuple[list[str], dict[str, int]]:
    first_seen: list[str] | None = None
    scanned = 0
    for _number, cells in rows:
        if not any(map(str.strip, cells)):
            continue
        fields = _header_fields(cells)
        if "name" in fields or "uscc" in fields:
            return column_labels(cells), fields
        first_seen = first_seen or cells
        scanned += 1
        if scanned >= HEADER_SCAN_ROWS:
            break
    if first_seen is None:
        raise RosterFileError(label, "is empty (no rows)")
    found = ", ".join(c.strip() for c in first_seen if c.strip())
    raise RosterFileError(
        label,
        f"has no recognisable header: found columns {shown(found)}; a roster needs a company "
        f"name column ({' / '.join(FIELD_ALIASES['name'][:4])} / name) or a 统一社会信用代码 "
        "column",
    )


def _records(
    label: str, numbered: Iterable[tuple[int, list[str]]], max_columns: int
) -> Iterator[RosterRow]:
    rows = _fitted(label, numbered, max_columns)
    labels, fields = _find_header(label, rows)
    # The recognised fields' columns, -1 for a field the header lacks.
    name_at, uscc_at, regno_at = (fields.get(f, -1) for f in ("name", "uscc", "reg_no"))
    width = len(labels)
    # A run of blank rows is held back as its first row and its length: trailing blank rows are
    # formatting, and a sheet with rows 1 and 600000 is not 600,000 rows of anything.
    run_start, run_cells = 0, []
    for number, cells in rows:
        if not any(map(str.strip, cells)):
            if not run_start:
                run_start, run_cells = number, cells
            continue
        if run_start:
            yield _record(label, run_start, labels, fields, run_cells, number - run_start)
            run_start = 0
        if len(cells) != width:
            yield _record(label, number, labels, fields, cells)
            continue
        # The common row, one cell under each header: _record's work without its checks.
        yield RosterRow(
            label,
            number,
            dict(zip(labels, cells, strict=True)),
            cells[name_at] if name_at >= 0 else "",
            cells[uscc_at] if uscc_at >= 0 else "",
            cells[regno_at] if regno_at >= 0 else "",
        )


def _record(
    label: str,
    number: int,
    labels: list[str],
    fields: dict[str, int],
    cells: list[str],
    span: int = 1,
) -> RosterRow:
    raw = {name: (cells[i] if i < len(cells) else "") for i, name in enumerate(labels)}
    for index in range(len(labels), len(cells)):
        if cells[index].strip():
            raw[f"column {index + 1}"] = cells[index]

    def field(name: str) -> str:
        index = fields.get(name)
        return cells[index] if index is not None and index < len(cells) else ""

    return RosterRow(label, number, raw, field("name"), field("uscc"), field("reg_no"), span)
