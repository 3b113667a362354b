"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('companies',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('uscc', sa.String(length=18), nullable=True),
    sa.Column('reg_no', sa.String(length=15), nullable=True),
    sa.Column('match_key', sa.Text(), nullable=False),
    sa.Column('query', sa.Text(), nullable=False),
    sa.Column('shard', sa.SmallInteger(), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('roster_source', sa.Text(), nullable=True),
    sa.Column('fetch_status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('last_error_code', sa.Integer(), nullable=True),
    sa.Column('last_attempt_at', models.base.UtcDateTime(timezone=True), nullable=True),
    sa.Column('last_fetched_at', models.base.UtcDateTime(timezone=True), nullable=True),
    sa.Column('consecutive_failures', sa.Integer(), server_default='0', nullable=False),
    sa.Column('license_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_response_at', models.base.UtcDateTime(timezone=True), nullable=True),
    sa.Column('created_at', models.base.UtcDateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', models.base.UtcDateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.CheckConstraint("fetch_status IN ('pending', 'ok', 'not_found', 'invalid', 'failed')", name=op.f('ck_companies_fetch_status')),
    sa.CheckConstraint('shard >= 0 AND shard < 32', name=op.f('ck_companies_shard')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_companies')),
    sa.UniqueConstraint('match_key', name=op.f('uq_companies_match_key')),
    sa.UniqueConstraint('uscc', name=op.f('uq_companies_uscc'))
    )
    with op.batch_alter_table('companies', schema=None) as batch_op:
        batch_op.create_index('ix_companies_shard_active', ['shard', 'active'], unique=False)

    op.create_table('roster_rejects',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('row_number', sa.Integer(), nullable=True),
    sa.Column('raw_row', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('detected_at', models.base.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_roster_rejects')),
    sa.UniqueConstraint('fingerprint', name=op.f('uq_roster_rejects_fingerprint'))
    )
    op.create_table('api_calls',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('company_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('called_at', models.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('http_status', sa.Integer(), nullable=True),
    sa.Column('error_code', sa.Integer(), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('latency_ms', sa.Integer(), nullable=True),
    sa.Column('billable', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.CheckConstraint("outcome IN ('ok', 'not_found', 'invalid', 'transient', 'throttled', 'quota', 'maintenance', 'fatal')", name=op.f('ck_api_calls_outcome')),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_api_calls_company_id_companies'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_calls'))
    )
    with op.batch_alter_table('api_calls', schema=None) as batch_op:
        batch_op.create_index('ix_api_calls_called_at', ['called_at'], unique=False)
        batch_op.create_index('ix_api_calls_company_id', ['company_id'], unique=False)
        batch_op.create_index('ix_api_calls_run_id', ['run_id'], unique=False)

    op.create_table('licenses',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('company_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('category', sa.Text(), nullable=False),
    sa.Column('lic_no', sa.Text(), nullable=False),
    sa.Column('issue_org', sa.Text(), nullable=True),
    sa.Column('lic_scope', sa.Text(), nullable=True),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('validity_start', sa.Date(), nullable=True),
    sa.Column('validity_end', sa.Date(), nullable=True),
    sa.Column('validity_open_ended', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('source_created_time', models.base.UtcDateTime(timezone=True), nullable=True),
    sa.Column('source_updated_time', models.base.UtcDateTime(timezone=True), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('first_seen_at', models.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', models.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('removed_at', models.base.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_licenses_company_id_companies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_licenses')),
    sa.UniqueConstraint('company_id', 'category', 'lic_no', name=op.f('uq_licenses_company_id_category_lic_no'))
    )
    with op.batch_alter_table('licenses', schema=None) as batch_op:
        batch_op.create_index('ix_licenses_validity_end', ['validity_end'], unique=False)

    op.create_table('license_names',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('license_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('grade', sa.String(length=8), nullable=True),
    sa.ForeignKeyConstraint(['license_id'], ['licenses.id'], name=op.f('fk_license_names_license_id_licenses'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_license_names')),
    sa.UniqueConstraint('license_id', 'name', name=op.f('uq_license_names_license_id_name'))
    )
    op.create_table('license_versions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('license_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('valid_from', models.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('valid_to', models.base.UtcDateTime(timezone=True), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('content', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('loaded_at', models.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['license_id'], ['licenses.id'], name=op.f('fk_license_versions_license_id_licenses'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_license_versions')),
    sa.UniqueConstraint('license_id', 'valid_from', name=op.f('uq_license_versions_license_id_valid_from'))
    )
    with op.batch_alter_table('license_versions', schema=None) as batch_op:
        batch_op.create_index('ix_license_versions_open', ['license_id'], unique=True, sqlite_where=sa.text('valid_to IS NULL'), postgresql_where=sa.text('valid_to IS NULL'))

    op.create_table('raw_responses',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('company_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('api_call_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('query', sa.Text(), nullable=False),
    sa.Column('fetched_at', models.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('http_status', sa.Integer(), nullable=False),
    sa.Column('error_code', sa.Integer(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('sign', sa.Text(), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('body_sha256', sa.String(length=64), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('normalized_at', models.base.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['api_call_id'], ['api_calls.id'], name=op.f('fk_raw_responses_api_call_id_api_calls'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_raw_responses_company_id_companies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_raw_responses')),
    sa.UniqueConstraint('api_call_id', name=op.f('uq_raw_responses_api_call_id'))
    )
    with op.batch_alter_table('raw_responses', schema=None) as batch_op:
        batch_op.create_index('ix_raw_responses_company_id_fetched_at', ['company_id', 'fetched_at'], unique=False)
        batch_op.create_index('ix_raw_responses_pending', ['id'], unique=False, sqlite_where=sa.text('normalized_at IS NULL'), postgresql_where=sa.text('normalized_at IS NULL'))

    op.create_table('license_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('license_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('company_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('change_type', sa.String(length=16), nullable=False),
    sa.Column('changed_fields', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('old_values', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('new_values', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('source_updated_time', models.base.UtcDateTime(timezone=True), nullable=True),
    sa.Column('detected_at', models.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('raw_response_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.CheckConstraint("change_type IN ('added', 'updated', 'removed', 'restored')", name=op.f('ck_license_changes_change_type')),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_license_changes_company_id_companies'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['license_id'], ['licenses.id'], name=op.f('fk_license_changes_license_id_licenses'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['raw_response_id'], ['raw_responses.id'], name=op.f('fk_license_changes_raw_response_id_raw_responses'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_license_changes'))
    )
    with op.batch_alter_table('license_changes', schema=None) as batch_op:
        batch_op.create_index('ix_license_changes_company_id', ['company_id'], unique=False)
        batch_op.create_index('ix_license_changes_detected_at', ['detected_at'], unique=False)
        batch_op.create_index('ix_license_changes_license_id', ['license_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('license_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_license_changes_license_id')
        batch_op.drop_index('ix_license_changes_detected_at')
        batch_op.drop_index('ix_license_changes_company_id')

    op.drop_table('license_changes')
    with op.batch_alter_table('raw_responses', schema=None) as batch_op:
        batch_op.drop_index('ix_raw_responses_pending', sqlite_where=sa.text('normalized_at IS NULL'), postgresql_where=sa.text('normalized_at IS NULL'))
        batch_op.drop_index('ix_raw_responses_company_id_fetched_at')

    op.drop_table('raw_responses')
    with op.batch_alter_table('license_versions', schema=None) as batch_op:
        batch_op.drop_index('ix_license_versions_open', sqlite_where=sa.text('valid_to IS NULL'), postgresql_where=sa.text('valid_to IS NULL'))

    op.drop_table('license_versions')
    op.drop_table('license_names')
    with op.batch_alter_table('licenses', schema=None) as batch_op:
        batch_op.drop_index('ix_licenses_validity_end')

    op.drop_table('licenses')
    with op.batch_alter_table('api_calls', schema=None) as batch_op:
        batch_op.drop_index('ix_api_calls_run_id')
        batch_op.drop_index('ix_api_calls_company_id')
        batch_op.drop_index('ix_api_calls_called_at')

    op.drop_table('api_calls')
    op.drop_table('roster_rejects')
    with op.batch_alter_table('companies', schema=None) as batch_op:
        batch_op.drop_index('ix_companies_shard_active')

    op.drop_table('companies')

