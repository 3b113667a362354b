"""companies.normalized_fingerprint: skip unchanged companies when replaying raw responses

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

A sha256 fold of PARSER_VERSION and the body_sha256 of every raw response applied to the
company, in (fetched_at, id) order (pipelines/normalize/fingerprint.py). NULL until a
normalization stores it, so databases migrated from 0002 replay everything once.

SQLite: `batch_alter_table(recreate="never")` so both directions are plain
`ALTER TABLE ... ADD/DROP COLUMN` (SQLite >= 3.35). A recreate-and-copy of `companies` would
drop the table under `PRAGMA foreign_keys=ON` — cascading into every licence — and break the
0002 views that read it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('companies', recreate='never') as batch_op:
        batch_op.add_column(
            sa.Column('normalized_fingerprint', sa.String(length=64), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table('companies', recreate='never') as batch_op:
        batch_op.drop_column('normalized_fingerprint')
