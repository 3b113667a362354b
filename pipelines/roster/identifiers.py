"""Company identifiers and names as the roster gives them (docs/architecture.md#parsing-rules).

Pure functions, no I/O:
- 统一社会信用代码 (USCC, GB 32100-2015): 18 characters, the last a mod-31 check character.
- 工商注册号 (15 digits, GB 15657 / ISO 7064 MOD 11,10): the pre-2015 registration number.
- A company name is cleaned for storage (`clean_name`) and folded for matching (`match_key`).
"""

from __future__ import annotations

import re
import unicodedata

USCC_LENGTH = 18
REGNO_LENGTH = 15
# The 31 characters a USCC may use; a character's value is its position here (no I, O, S, V, Z).
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_VALUE = {ch: i for i, ch in enumerate(USCC_ALPHABET)}
# Per position of the first 17 characters: character → its value times that position's weight.
_USCC_WEIGHTED = tuple({ch: value * w for ch, value in _USCC_VALUE.items()} for w in USCC_WEIGHTS)

# Every opening/closing bracket a person types for a branch or region note in a company name.
_BRACKETS = str.maketrans(
    {
        "[": "(",
        "]": ")",
        "【": "(",
        "】": ")",
        "〔": "(",
        "〕": ")",
        "〖": "(",
        "〗": ")",
        "（": "(",
        "）": ")",
    }
)
_HAS_BRACKET = re.compile("[" + re.escape("".join(map(chr, _BRACKETS))) + "]").search
_WHITESPACE = re.compile(r"\s+")


def normalize_uscc(raw: str | None) -> str:
    """The USCC as the standard writes it: ASCII, upper-case, no spaces anywhere."""
    if not raw:
        return ""
    if raw.isascii() and raw.isalnum():
        return raw if raw.isupper() or raw.isdigit() else raw.upper()
    folded = unicodedata.normalize("NFKC", raw)
    return _WHITESPACE.sub("", _strip_invisible(folded)).upper()


def uscc_check_character(first17: str) -> str | None:
    """The check character for 17 USCC characters, or None if one is outside the alphabet."""
    if len(first17) != USCC_LENGTH - 1:
        return None
    try:  # one C-level pass: 200,000 roster rows check 200,000 codes
        total = sum(map(dict.__getitem__, _USCC_WEIGHTED, first17))
    except KeyError:
        return None
    return USCC_ALPHABET[(31 - total % 31) % 31]


def is_valid_uscc(code: str) -> bool:
    """True for an 18-character USCC whose check character is right (GB 32100-2015).

    The registration-authority and organisation-type codes (characters 1–2) are not checked
    against the published tables: new codes appear, and the check character already catches
    typing errors.
    """
    if len(code) != USCC_LENGTH:
        return False
    return uscc_check_character(code[:17]) == code[17]


def regno_check_digit(first14: str) -> str | None:
    """The ISO 7064 MOD 11,10 check digit for 14 digits, or None if they are not 14 digits."""
    if len(first14) != REGNO_LENGTH - 1 or not first14.isascii() or not first14.isdigit():
        return None
    product = 10
    for digit in first14:
        remainder = (product + int(digit)) % 10 or 10
        product = (remainder * 2) % 11
    return str((11 - product) % 10)


def is_valid_regno15(code: str) -> bool:
    """True for a 15-digit 工商注册号 whose last digit is its ISO 7064 MOD 11,10 check digit."""
    if len(code) != REGNO_LENGTH:
        return False
    return regno_check_digit(code[:14]) == code[14]


def normalize_regno(raw: str | None) -> str:
    """A 注册号 as digits only: NFKC (full-width digits), spaces and invisibles removed."""
    return normalize_uscc(raw)


def _strip_invisible(text: str) -> str:
    """Drop control and format characters (zero-width, bidi marks, BOM) but keep whitespace."""
    if text.isprintable():  # no control or format character in it
        return text
    return "".join(
        ch for ch in text if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf")
    )


def clean_name(raw: str | None) -> str:
    """A company name for storage: trimmed, invisibles removed, whitespace runs as one space.

    Full-width characters are kept as the person typed them; only `match_key` folds them.
    """
    if not raw:
        return ""
    cleaned = " ".join(_strip_invisible(raw).split())
    return raw if cleaned == raw else cleaned  # share the string when nothing changed


def match_key(name: str) -> str:
    """The key that identifies a name: NFKC, no whitespace, every bracket style as ( ).

    有限公司 and 有限责任公司 stay different: they are different legal forms.
    """
    folded = "".join(unicodedata.normalize("NFKC", clean_name(name)).split())
    # translate() looks every character up in a dict; most names have no bracket to fold.
    return folded.translate(_BRACKETS) if _HAS_BRACKET(folded) else folded
