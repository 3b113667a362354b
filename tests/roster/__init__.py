"""Roster tests; the helpers below write real roster files into a test's tmp_path."""

from __future__ import annotations

import csv
import io
import struct
import zipfile
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import openpyxl

HEADER = ["企业名称", "统一社会信用代码", "注册号"]
Rows = Sequence[Sequence[object]]


def csv_bytes(rows: Rows, *, encoding: str = "utf-8", delimiter: str = ",") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode(encoding)


def write_csv(path: Path, rows: Rows, *, encoding: str = "utf-8", delimiter: str = ",") -> Path:
    path.write_bytes(csv_bytes(rows, encoding=encoding, delimiter=delimiter))
    return path


def write_xlsx(path: Path, sheets: dict[str, Rows]) -> Path:
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(list(row))
    workbook.save(path)
    return path


_XLSX_PARTS = {
    "[Content_Types].xml": (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        "</Types>"
    ),
    "_rels/.rels": (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Target="xl/workbook.xml" Type="http://schemas.openxmlformats'
        '.org/officeDocument/2006/relationships/officeDocument"/>'
        "</Relationships>"
    ),
    "xl/workbook.xml": (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
    ),
    "xl/_rels/workbook.xml.rels": (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Target="worksheets/sheet1.xml" Type="http://schemas.'
        'openxmlformats.org/officeDocument/2006/relationships/worksheet"/>'
        "</Relationships>"
    ),
}


def write_sheet_xml(path: Path, rows: dict[int, Sequence[str]], *, dimension: str = "") -> Path:
    """A minimal .xlsx written with zipfile: `rows` maps an Excel row number to its cells.

    Only the rows given are in the sheet XML, as inline strings, so a sheet with rows 1 and
    600000 is a few hundred bytes; `dimension` is the used range the file claims, if any.
    """
    cells = "".join(
        f'<row r="{number}">'
        + "".join(
            f'<c r="{_column(i)}{number}" t="inlineStr"><is><t>{escape(text)}</t></is></c>'
            for i, text in enumerate(values)
            if text != ""
        )
        + "</row>"
        for number, values in sorted(rows.items())
    )
    sheet = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        + (f'<dimension ref="{dimension}"/>' if dimension else "")
        + f"<sheetData>{cells}</sheetData></worksheet>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in _XLSX_PARTS.items():
            archive.writestr(name, text)
        archive.writestr("xl/worksheets/sheet1.xml", sheet)
    return path


def _column(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def corrupt_member(path: Path, member: str, *, at: float = 0.0) -> Path:
    """Overwrite 64 bytes of a zip member's deflate stream, `at` a fraction of the way in, with
    0xFF (at the start: BTYPE 11, an invalid block type). The archive and its CRCs look fine;
    inflating the member fails where the damage is."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    assert info.compress_type == zipfile.ZIP_DEFLATED
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
    start = info.header_offset + 30 + name_length + extra_length + int(info.compress_size * at)
    data[start : start + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    return path


def rewrite_member(path: Path, member: str, old: bytes, new: bytes) -> Path:
    """Replace bytes inside one part of a zip (a crafted cell in a valid workbook)."""
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    assert old in parts[member]
    parts[member] = parts[member].replace(old, new)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in parts.items():
            archive.writestr(name, content)
    return path
