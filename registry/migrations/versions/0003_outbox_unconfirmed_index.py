"""an index of the messages taken without a provider id

A premium reply whose send answer was lost is recorded as taken (``accepted_at``) with no provider
id; so is a 2xx answer that could not be read. A delivery report for its phone gives it the id;
the reconciler expires the ones no report confirmed within a day. The index holds only those
rows, so the reconciler's pass each minute does not walk the outbox.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 21:30:00
"""
from registry.migrate import create_index, drop_index


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

UNCONFIRMED = "status = 'submitted' AND provider_message_id IS NULL AND accepted_at IS NOT NULL"


def upgrade() -> None:
    # CONCURRENTLY on PostgreSQL: writes to the outbox go on while it is built.
    create_index('ix_outbound_messages_unconfirmed', 'outbound_messages', ['accepted_at'], where=UNCONFIRMED)


def downgrade() -> None:
    drop_index('ix_outbound_messages_unconfirmed', 'outbound_messages', where=UNCONFIRMED)
