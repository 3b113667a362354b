"""The company roster: the user's list of companies, read, validated, deduplicated and stored.

`load_roster(path)` reads a CSV/XLSX file or a folder into a `RosterResult` (entries and
rejects with reasons); `store_roster(engine, result, now=...)` writes it to `companies` and
`roster_rejects` and returns a `RosterStoreReport`.
"""

from pipelines.roster.reader import RosterFileError, RosterRow
from pipelines.roster.store import RosterStoreReport, store_roster
from pipelines.roster.validate import RosterEntry, RosterReject, RosterResult, load_roster

__all__ = [
    "RosterEntry",
    "RosterFileError",
    "RosterReject",
    "RosterResult",
    "RosterRow",
    "RosterStoreReport",
    "load_roster",
    "store_roster",
]
