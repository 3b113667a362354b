"""Normalize raw ConLicByName responses into companies' licences, names, versions and changes.

`parsing` turns bodies into typed records (pure), `tracking` applies the change-tracking rules
in memory (pure), `state` loads and `writer` writes a chunk of companies with set-based SQL.
`fingerprint` folds a company's raw-response hashes (and `PARSER_VERSION`, to bump whenever
parsing or tracking semantics change) so a replay skips the companies it would not change.
"""

from pipelines.normalize.report import NormalizeReport
from pipelines.normalize.writer import normalize_pending, renormalize

__all__ = ["NormalizeReport", "normalize_pending", "renormalize"]
