"""Normalized fingerprint of a company: which raw responses, under which parser, made its rows.

    fp_0 = sha256(PARSER_VERSION)
    fp_i = sha256(fp_{i-1} + body_sha256_i)     (hex digests, UTF-8; i over the company's raw
                                                 responses in (fetched_at, id) order)

Every normalization stores the fold over ALL of a company's raw responses (read in the chunk's
transaction, under the shard lock) in ``companies.normalized_fingerprint``, with the chunk's
writes. A replay without rebuild computes the same fold from ``raw_responses`` (ids, times and
hashes only — no bodies) and skips a company whose stored fingerprint equals it: its rows are
already what replaying those responses would leave. A rebuild clears the fingerprints first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from functools import lru_cache

# Bump whenever parsing or change tracking would turn the same bodies into different rows
# (a parsing fix, a new rule, another content hash): every stored fingerprint then differs,
# so the next renormalize replays every company instead of skipping it.
PARSER_VERSION = "2026-11-29.2"  # .2: surrogates stripped, lenient JSON, robust codes and totals


def initial() -> str:
    """fp_0: the fingerprint of a company no raw response was applied to."""
    return _initial(PARSER_VERSION)


@lru_cache(maxsize=4)
def _initial(parser_version: str) -> str:
    return hashlib.sha256(parser_version.encode()).hexdigest()


def step(fingerprint: str, body_sha256: str) -> str:
    """fp_i from fp_{i-1} and the next response's body_sha256."""
    return hashlib.sha256((fingerprint + body_sha256).encode()).hexdigest()


def settled(body_sha256: str) -> str:
    """A company's ``settled_fingerprint`` when this body settles it: the fold of that one
    response, so a parser version change unsettles every company (normalize/settled)."""
    return step(initial(), body_sha256)


def fold(body_hashes: Iterable[str]) -> str:
    """The fingerprint of one company's responses, given in (fetched_at, id) order."""
    fingerprint = initial()
    for body_sha256 in body_hashes:
        fingerprint = step(fingerprint, body_sha256)
    return fingerprint


def fold_sorted(rows: Iterable[tuple[int, str]]) -> Iterator[tuple[int, str, int]]:
    """(company_id, fingerprint, responses) per company, streaming over (company_id,
    body_sha256) rows sorted by company and then (fetched_at, id)."""
    start = initial()
    current: int | None = None
    fingerprint, count = start, 0
    for company_id, body_sha256 in rows:
        if company_id != current:
            if current is not None:
                yield current, fingerprint, count
            current, fingerprint, count = company_id, start, 0
        fingerprint = step(fingerprint, body_sha256)
        count += 1
    if current is not None:
        yield current, fingerprint, count
