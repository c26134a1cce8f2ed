"""an index of the audit trail's results replies by exam series, in time order

``elimu audit --series KCSE 2025`` (``detail LIKE 'KCSE 2025 %'``, newest first) and the count of
answers ``elimu results withdraw`` gives (``answers_since``) read the whole trail, which 0007 left
so: a series is a results day's million rows, and an index of ``detail`` alone hands them back
out of time order, to be sorted in full for the newest 200. The index holds each row's first two
words of ``detail`` (``"KCSE 2025"`` of a results reply ``"<exam> <year> <number>"``) before its
``at`` and ``id``: ``--series`` walks the series' newest rows back from the end and stops at its
limit, and the count reads the series' rows since the release, not the trail.
``registry.services.audit.results_of_series`` now asks for that expression.

Measured on PostgreSQL 15 with 5 million audit rows (4.2 million results replies of five series,
0.8 million others; 514 MB), EXPLAIN ANALYZE with 2 parallel workers (without any in brackets):
``--series`` 1,067 ms (1,346 ms) before, 0.2 ms after; ``--limit 100000`` 972 ms (2,205 ms) before,
129 ms (108 ms) after; the count since a release 70,000 answers ago 842 ms (1,138 ms) before, 95 ms
(37 ms) after; the count of a whole series of 840,000 answers 814 ms (1,148 ms) before, 408 ms
(444 ms) after. The index is 230 MB (one more entry per audit row); the upgrade built it
``CONCURRENTLY`` (results replies go on being written) in 13 s, the downgrade drops it in 0.2 s.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 01:00:00
"""
from alembic import op
from sqlalchemy import text

from registry.migrate import create_index, drop_index

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

NAME = 'ix_audit_events_series'
# registry.models.audit.first_two_words, as each dialect compiles it
FIRST_TWO_WORDS = {
    'postgresql': "((split_part(detail, ' ', 1) || ' ') || split_part(detail, ' ', 2))",
    'sqlite': "substr(detail, 1, instr(detail, ' ') + instr(substr(detail, instr(detail, ' ') + 1), ' ') - 1)",
}


def upgrade() -> None:
    # CONCURRENTLY on PostgreSQL: results replies go on being written while it is built.
    create_index(NAME, 'audit_events', [text(FIRST_TWO_WORDS[op.get_context().dialect.name]), 'at', 'id'])


def downgrade() -> None:
    drop_index(NAME, 'audit_events')
