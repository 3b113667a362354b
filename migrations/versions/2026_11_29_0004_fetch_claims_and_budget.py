"""fetch_claims and api_budget_days: one purchase per company and one budget across runs

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

`fetch_claims`: a company being fetched, by which run, until when (a lease). Two overlapping runs
(a nightly and a UI backfill of the same shards) never buy the same company twice.
`api_budget_days`: HTTP attempts reserved against JUHE_DAILY_BUDGET per Asia/Shanghai day, by
every process sharing the database (an atomic counter, not a per-run snapshot).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.base import UtcDateTime

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'fetch_claims',
        sa.Column(
            'company_id',
            sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
            sa.ForeignKey(
                'companies.id',
                name=op.f('fk_fetch_claims_company_id_companies'),
                ondelete='CASCADE',
            ),
            nullable=False,
        ),
        sa.Column('run_id', sa.String(length=64), nullable=False),
        sa.Column('expires_at', UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('company_id', name=op.f('pk_fetch_claims')),
    )
    op.create_table(
        'api_budget_days',
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('calls', sa.Integer(), server_default='0', nullable=False),
        sa.PrimaryKeyConstraint('day', name=op.f('pk_api_budget_days')),
    )


def downgrade() -> None:
    op.drop_table('api_budget_days')
    op.drop_table('fetch_claims')
