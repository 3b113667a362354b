"""Read a roster as rows of strings: CSV (UTF-8, BOM, GBK/GB18030, UTF-16), XLSX, or a folder.

Rows are streamed, never loaded whole. Each row carries its source (the file name, plus
`#Sheet` for workbooks) and the row number a person sees in Excel (the header is usually row 1).
Anything that stops a file from being read raises `RosterFileError` naming the file and the
problem in plain words; the caller records it and moves on to the next file.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import ParseError

import charset_normalizer
import openpyxl
from openpyxl.utils.exceptions import InvalidFileException

TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")
FOLDER_SUFFIXES = (".csv", ".tsv", ".xlsx", ".xlsm")
HEADER_SCAN_ROWS = 10  # title lines above the header are common in exported workbooks
DELIMITERS = (",", "\t", ";", "|")
_CHUNK = 1 << 20

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

    @property
    def is_blank(self) -> bool:
        return not any(value.strip() for value in self.raw_row.values())


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


def read_source(source: RosterSource) -> Iterator[RosterRow]:
    """Stream the data rows of one file or sheet (raises RosterFileError while iterating)."""
    yield from _records(source.label, _numbered_rows(source))


def read_roster(path: str | Path, sheet: str | None = None) -> Iterator[RosterRow]:
    """Every data row of a roster path; the first file error stops the iteration."""
    for source in roster_sources(path, sheet):
        yield from read_source(source)


def _is_workbook(path: Path) -> bool:
    return path.suffix.lower() in WORKBOOK_SUFFIXES


def _numbered_rows(source: RosterSource) -> Iterator[tuple[int, list[str]]]:
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
        return _text_rows(path, label)
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
    best = charset_normalizer.from_path(path).best()
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


def _text_rows(path: Path, label: str) -> Iterator[tuple[int, list[str]]]:
    encoding = detect_encoding(path, label)
    with path.open(encoding=encoding, newline="") as file:
        delimiter = _delimiter(file.read(65536))
    number = 0
    try:
        with path.open(encoding=encoding, newline="") as file:
            for number, cells in enumerate(csv.reader(file, delimiter=delimiter), start=1):
                yield number, cells
    except (csv.Error, UnicodeDecodeError) as error:
        raise RosterFileError(
            label, f"row {number + 1} could not be read ({error}); the rows before it were read"
        ) from error


# --- workbooks ----------------------------------------------------------------------------

_WORKBOOK_ERRORS = (
    zipfile.BadZipFile,
    InvalidFileException,
    KeyError,
    ParseError,
    OSError,
    ValueError,
    TypeError,
)


def _workbook_rows(path: Path, sheet: str | None, label: str) -> Iterator[tuple[int, list[str]]]:
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except zipfile.BadZipFile as error:
        raise RosterFileError(
            label,
            "is not a valid .xlsx workbook (not a zip file); if it is a CSV, give it a .csv name",
        ) from error
    except _WORKBOOK_ERRORS as error:
        raise RosterFileError(label, f"is not a readable .xlsx workbook ({error})") from error
    try:
        worksheet = _pick_sheet(workbook, sheet, label)
        worksheet.reset_dimensions()  # some writers record a wrong used range; read everything
        for number, values in enumerate(worksheet.iter_rows(values_only=True), start=1):
            yield number, [_cell_text(v) for v in values]
    except _WORKBOOK_ERRORS as error:
        raise RosterFileError(label, f"could not be read completely ({error})") from error
    finally:
        workbook.close()


def _pick_sheet(workbook: openpyxl.Workbook, sheet: str | None, label: str):  # type: ignore[no-untyped-def]
    names = workbook.sheetnames
    if sheet is None:
        if not workbook.worksheets:
            raise RosterFileError(label, "has no worksheet")
        return workbook.worksheets[0]
    if sheet not in names:
        raise RosterFileError(
            label,
            f"has no sheet named {sheet!r}; its sheets are " + ", ".join(repr(n) for n in names),
        )
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
    """field → column index of the first column whose header is one of the field's aliases."""
    found: dict[str, int] = {}
    for index, cell in enumerate(cells):
        field = _ALIAS_FIELD.get(header_token(cell))
        if field and field not in found:
            found[field] = index
    return found


def _labels(cells: list[str]) -> list[str]:
    """Column labels for raw_row: the header text, or `column N` where it is blank or repeated."""
    labels: list[str] = []
    for index, cell in enumerate(cells, start=1):
        label = cell.strip() or f"column {index}"
        labels.append(label if label not in labels else f"{label} (column {index})")
    return labels


def _find_header(
    label: str, rows: Iterator[tuple[int, list[str]]]
) -> tuple[list[str], dict[str, int]]:
    first_seen: list[str] | None = None
    scanned = 0
    for _number, cells in rows:
        if not any(c.strip() for c in cells):
            continue
        fields = _header_fields(cells)
        if "name" in fields or "uscc" in fields:
            return _labels(cells), fields
        first_seen = first_seen or cells
        scanned += 1
        if scanned >= HEADER_SCAN_ROWS:
            break
    if first_seen is None:
        raise RosterFileError(label, "is empty (no rows)")
    found = ", ".join(c.strip() for c in first_seen if c.strip())
    raise RosterFileError(
        label,
        f"has no recognisable header: found columns {found}; a roster needs a company name "
        f"column ({' / '.join(FIELD_ALIASES['name'][:4])} / name) or a 统一社会信用代码 column",
    )


def _records(label: str, numbered: Iterable[tuple[int, list[str]]]) -> Iterator[RosterRow]:
    rows = iter(numbered)
    labels, fields = _find_header(label, rows)
    blanks: list[RosterRow] = []  # held back: trailing blank rows are formatting, not data
    for number, cells in rows:
        row = _record(label, number, labels, fields, cells)
        if row.is_blank:
            blanks.append(row)
            continue
        yield from blanks
        blanks.clear()
        yield row


def _record(
    label: str, number: int, labels: list[str], fields: dict[str, int], cells: list[str]
) -> RosterRow:
    raw = {name: (cells[i] if i < len(cells) else "") for i, name in enumerate(labels)}
    for index in range(len(labels), len(cells)):
        if cells[index].strip():
            raw[f"column {index + 1}"] = cells[index]

    def field(name: str) -> str:
        index = fields.get(name)
        return cells[index] if index is not None and index < len(cells) else ""

    return RosterRow(label, number, raw, field("name"), field("uscc"), field("reg_no"))
