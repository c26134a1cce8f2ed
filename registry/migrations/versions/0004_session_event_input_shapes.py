"""session events keep the shape of what was typed, not the text

AT's end-of-session ``input`` holds every input of the session (PINs, one-time codes, dates of
birth, birth certificate numbers). It was stored as sent; from now on only the menu choices are
kept and longer inputs become their length (``gateway.ussd.events.input_shape``). This revision
rewrites the rows stored before, in batches. Downgrading keeps the shapes: the text is gone.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 02:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

BATCH = 5000


def _shape(value: str) -> str:
    # gateway.ussd.events.input_shape as of this revision (a migration does not follow later code)
    parts = value.strip().split("*")
    return "*".join(p if len(p) <= 2 or (p[:1] == "[" and p[-1:] == "]" and p[1:-1].isdigit()) else f"[{len(p)}]"
                    for p in parts)


def upgrade() -> None:
    bind = op.get_bind()
    events = sa.table('ussd_session_events', sa.column('id', sa.Integer), sa.column('last_input', sa.Text))
    after = 0
    while True:
        rows = bind.execute(sa.select(events.c.id, events.c.last_input)
                            .where(events.c.id > after, events.c.last_input.is_not(None))
                            .order_by(events.c.id).limit(BATCH)).all()
        if not rows:
            return
        changed = [{"row_id": row_id, "shape": _shape(text)} for row_id, text in rows if _shape(text) != text]
        if changed:
            bind.execute(events.update().where(events.c.id == sa.bindparam("row_id"))
                         .values(last_input=sa.bindparam("shape")), changed)
        after = rows[-1][0]


def downgrade() -> None:
    pass  # what was typed is not kept anywhere to put back
