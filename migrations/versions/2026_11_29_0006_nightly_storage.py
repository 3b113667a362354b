"""PostgreSQL: room on every page for the nightly's updates; raw bodies out of the row

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

Every nightly rewrites ``licenses.last_seen_at`` of every current licence and a few columns of
every fetched company. None of those columns is indexed, so PostgreSQL can update a row in
place (a HOT update: no new index entries) when its page has room for the new version. With
the default fillfactor (100) pages are full, every update moves the row and adds an entry to
each index, and after VACUUM the table is twice its size anyway. ``fillfactor = 50`` keeps that
room from the start: at 100,000 companies the nightly's licence update took 5.6-5.8 s with 100
and 2.2-2.6 s with 50 (475k rows, VACUUM between nightlies), at the same table size.

``raw_responses``: marking a response normalized can never be a HOT update (``normalized_at``
is in the pending index's predicate), so PostgreSQL copies the whole row — with the body, ~1.2 kB
compressed inline. ``toast_tuple_target = 256`` stores new bodies compressed out of line (TOAST):
the row copies a pointer instead (50,000 rows: UPDATE 0.41 s -> 0.27 s), and every read that
does not need the body (the plan, the fingerprints) scans a third of the pages. Reading bodies
was not slower (0.87 s -> 0.70 s), inserting them 0.3 s slower per 50,000.

New pages and rows follow the settings; existing ones as they are rewritten (or at once by
``VACUUM FULL``). SQLite has no such settings: nothing to do there.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("licenses", "companies")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = 50)")
    op.execute("ALTER TABLE raw_responses SET (toast_tuple_target = 256)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE raw_responses RESET (toast_tuple_target)")
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
