"""when an announcement was cancelled

``elimu sms cancel-announcement`` ended the announcement's messages still waiting, but a message in
flight at that moment that went back to waiting afterwards (its worker lost past the lease, a
temporary AT failure) was sent. The cancel is now recorded on the announcement, and a worker's
claim ends any message of a cancelled announcement instead of sending it. A nullable column with
no default: on PostgreSQL the ``ALTER TABLE`` changes only the catalogue, under an ``ACCESS
EXCLUSIVE`` lock on ``announcements`` (one row per announcement) for that moment, within the
upgrade's 1 s lock timeout; no row is read or written.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 13:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('announcements', sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('announcements') as batch:
        batch.drop_column('cancelled_at')
