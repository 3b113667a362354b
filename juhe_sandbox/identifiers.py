"""Chinese company identifiers with valid check characters, self-contained for the sandbox.

- 统一社会信用代码 (USCC, GB 32100-2015): 18 characters — registration authority, entity type,
  6-digit region code, 9-character organisation code (GB 11714, with its own check character)
  and a final check character over a 31-symbol alphabet.
- 注册号 (the pre-2015 business registration number): 15 digits, the last an ISO 7064 MOD 11,10
  check digit.

The sandbox must not import `pipelines`, so it carries this small implementation of its own.
"""

from __future__ import annotations

from operator import mul
from random import Random

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {ch: i for i, ch in enumerate(USCC_ALPHABET)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_VALUE = {ch: int(ch, 36) for ch in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def uscc_check_char(first17: str) -> str:
    """The GB 32100-2015 check character for the first 17 characters of a USCC."""
    total = sum(map(mul, map(_USCC_VALUE.__getitem__, first17), _USCC_WEIGHTS))
    return USCC_ALPHABET[-total % 31]


def is_valid_uscc(code: str) -> bool:
    """True when `code` is 18 characters of the USCC alphabet with a correct check character."""
    code = code.strip().upper()
    if len(code) != 18 or any(ch not in _USCC_VALUE for ch in code):
        return False
    return uscc_check_char(code[:17]) == code[17]


def org_code_check_char(first8: str) -> str:
    """The GB 11714 check character of an 8-character organisation code body."""
    check = 11 - sum(map(mul, map(_ORG_VALUE.__getitem__, first8), _ORG_WEIGHTS)) % 11
    return "X" if check == 10 else "0" if check == 11 else str(check)


def regno_check_digit(first14: str) -> str:
    """The ISO 7064 MOD 11,10 check digit for the first 14 digits of a 注册号."""
    product = 10
    for ch in first14:
        remainder = (product + int(ch)) % 10 or 10
        product = remainder * 2 % 11
    return str((11 - product) % 10)


def is_valid_regno(code: str) -> bool:
    """True when `code` is 15 digits whose last digit is the MOD 11,10 check digit."""
    code = code.strip()
    return len(code) == 15 and code.isdigit() and regno_check_digit(code[:14]) == code[14]


def make_uscc(rng: Random, region_code: str) -> str:
    """A USCC of an enterprise (登记管理部门 9, 机构类别 1) registered in `region_code`.

    Most organisation codes are 8 digits (older companies); some use the post-2015 "MA" form.
    """
    if rng.random() < 0.35:
        body = "MA" + "".join(rng.choices(USCC_ALPHABET, k=6))
    else:
        body = f"{rng.randrange(100_000_000):08d}"
    first17 = "91" + region_code + body + org_code_check_char(body)
    return first17 + uscc_check_char(first17)


def make_regno(rng: Random, region_code: str) -> str:
    """A 15-digit 注册号: region code, 8-digit sequence and the MOD 11,10 check digit."""
    first14 = f"{region_code}{rng.randrange(100_000_000):08d}"
    return first14 + regno_check_digit(first14)


def corrupt_check_char(uscc: str) -> str:
    """The same USCC with a different (hence wrong) check character: for bad roster rows."""
    current = _USCC_VALUE[uscc[17]]
    return uscc[:17] + USCC_ALPHABET[(current + 7) % 31]
