"""outbox indexes that only hold the rows their scans look for

The index on (status, next_attempt_at) held every outbound message. A row update by id with a
status check (``record``: ``id = :id AND status = 'submitted'``) could be planned through it, and
when the table's statistics lagged (a fresh deployment, a results-day burst) PostgreSQL did so,
walking every submitted message for each update. The scans that need a status use two partial
indexes instead, each holding only the rows it serves: the queued rows by due time (claims, the
reconciler's re-enqueue) and the rows handed to AT but not yet accepted by submission time (the
reconciler's reclaim). A status check with an id can no longer be planned through either.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 08:45:00
"""
from registry.migrate import create_index, drop_index


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

DUE = "status = 'queued'"
IN_FLIGHT = "status = 'submitted' AND accepted_at IS NULL"


def upgrade() -> None:
    # Built CONCURRENTLY on PostgreSQL, the new ones first: the outbox is written throughout, and the
    # claims keep an index to use meanwhile (``registry.migrate.create_index``; docs/deploy.md).
    create_index('ix_outbound_messages_due', 'outbound_messages', ['next_attempt_at'], where=DUE)
    create_index('ix_outbound_messages_in_flight', 'outbound_messages', ['submitted_at'], where=IN_FLIGHT)
    drop_index('ix_outbound_messages_status_next', 'outbound_messages')


def downgrade() -> None:
    create_index('ix_outbound_messages_status_next', 'outbound_messages', ['status', 'next_attempt_at'])
    drop_index('ix_outbound_messages_in_flight', 'outbound_messages', where=IN_FLIGHT)
    drop_index('ix_outbound_messages_due', 'outbound_messages', where=DUE)
