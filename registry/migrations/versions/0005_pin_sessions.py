"""the USSD session each account last entered its right PIN in

Learner data (the learner list, a status, a UPI code) went to any session whose menu state said
the PIN was entered; the registry now records the session itself (one row per account, replaced
at each right PIN) and discloses only to that session, for 5 minutes. A new, empty table: on
PostgreSQL its foreign key takes a SHARE ROW EXCLUSIVE lock on ``guardians`` for the moment of the
CREATE (under the upgrade's 1 s lock timeout, retried), and no existing row is read or written.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 09:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pin_sessions',
    sa.Column('guardian_id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.String(length=100), nullable=False),
    sa.Column('verified_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['guardian_id'], ['guardians.id'], name=op.f('fk_pin_sessions_guardian_id_guardians'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('guardian_id', name=op.f('pk_pin_sessions'))
    )


def downgrade() -> None:
    op.drop_table('pin_sessions')
