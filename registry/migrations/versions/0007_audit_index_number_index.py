"""an index of the audit trail's results replies by index number

``elimu audit --index NUMBER`` (``detail LIKE '% NUMBER'``) and ``elimu audit --learner UPI`` of a
learner with results linked (the learner's rows or a results reply of one of its numbers, joined
to ``learners`` before the filter) read the whole trail: about one row per disclosure, a results
day alone a million ``results_replied`` rows. The index holds each row's third word of ``detail``
(``split_part(detail, ' ', 3)``: the number of a results reply ``"<exam> <year> <number>"``), and
``registry.services.audit.history`` now asks for that expression, and for the learner by its id.

Measured on PostgreSQL 15 with 5 million audit rows (4.2 million results replies of five series,
0.8 million others; 1.1 GB), EXPLAIN ANALYZE with 2 parallel workers (without any in brackets):
``--index`` 336 ms (561 ms) before, 0.02 ms after; ``--learner`` with results linked 797 ms
(1,766 ms: over 1 s when no worker is free) before, 0.08 ms after (a bitmap OR of the learner and
index-number indexes); both grew with the trail. ``--phone`` and ``--learner`` without results used their indexes already (0.03 ms).
The upgrade built the index (132 MB) ``CONCURRENTLY`` in 5.1 s while a probe wrote a results reply
and read the trail every 50 ms (slowest 54 ms); the downgrade drops it in 0.1 s.

Not indexed: ``--series`` and ``withdraw``'s count (``answers_since``), ``detail LIKE 'KCSE 2025
%'``. A series is a results day's million rows, 20 % of that trail, which PostgreSQL reads faster
in one pass: 484 ms (865 ms) for the newest 200, 713 ms (1,185 ms) for ``--limit 100000``, 310 ms
(521 ms) for the count. An index on ``(action, detail text_pattern_ops)`` (242 MB, one more entry
per reply) was not chosen for the list and took the count from 427 ms to 354 ms.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 14:00:00
"""
from alembic import op
from sqlalchemy import text

from registry.migrate import create_index, drop_index

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

NAME = 'ix_audit_events_index_number'
# registry.models.audit.third_word, as each dialect compiles it
THIRD_WORD = {
    'postgresql': "split_part(detail, ' ', 3)",
    'sqlite': "substr(detail, instr(detail, ' ') + instr(substr(detail, instr(detail, ' ') + 1), ' ') + 1)",
}


def upgrade() -> None:
    # CONCURRENTLY on PostgreSQL: results replies go on being written while it is built.
    create_index(NAME, 'audit_events', [text(THIRD_WORD[op.get_context().dialect.name])])


def downgrade() -> None:
    drop_index(NAME, 'audit_events')
