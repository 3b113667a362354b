"""companies.settled_fingerprint: a nightly's identical answers cost a hash comparison

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

``fingerprint.fold([body_sha256])`` of the company's newest raw response when that answer
*settles* the company — its current licences are exactly the answer's items, as their current
versions, and parsing it noticed nothing — else NULL. A pending response whose body folds to
the same value and was fetched after ``last_response_at`` would change only presence times, so
normalization applies it with set-based updates instead of parsing it
(pipelines/normalize/settled.py). NULL after the upgrade: the first normalization of each
company under 0005 takes the full path once and settles it.

SQLite: `batch_alter_table(recreate="never")`, plain ADD/DROP COLUMN (see 0003 for why).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('companies', recreate='never') as batch_op:
        batch_op.add_column(sa.Column('settled_fingerprint', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('companies', recreate='never') as batch_op:
        batch_op.drop_column('settled_fingerprint')
