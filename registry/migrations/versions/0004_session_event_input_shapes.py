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
    ctx = op.get_context()
    if ctx.dialect.name != "postgresql" or ctx.as_sql:
        _rewrite(op.get_bind(), postgresql=False)
        return
    # PostgreSQL: each batch commits on its own (one UPDATE of up to BATCH rows), so the rows are
    # locked for milliseconds, not for the whole pass (22.8 s for 2 million rows, during which an
    # end-of-session event for one of them waited out the web's 3 s limit). Interrupted, the pass
    # starts again from the first row and keeps what was already shaped (a shape is its own shape).
    with ctx.autocommit_block():
        _rewrite(op.get_bind(), postgresql=True)


def _rewrite(bind, *, postgresql: bool) -> None:
    events = sa.table('ussd_session_events', sa.column('id', sa.Integer), sa.column('last_input', sa.Text))
    after = 0
    while True:
        rows = bind.execute(sa.select(events.c.id, events.c.last_input)
                            .where(events.c.id > after, events.c.last_input.is_not(None))
                            .order_by(events.c.id).limit(BATCH)).all()
        if not rows:
            return
        changed = [(row_id, _shape(text)) for row_id, text in rows if _shape(text) != text]
        if changed and postgresql:
            bind.execute(sa.text("UPDATE ussd_session_events AS e SET last_input = v.shape "
                                 "FROM unnest(CAST(:ids AS integer[]), CAST(:shapes AS text[])) AS v (id, shape) "
                                 "WHERE e.id = v.id"),
                         {"ids": [row_id for row_id, _ in changed], "shapes": [shape for _, shape in changed]})
        elif changed:
            bind.execute(events.update().where(events.c.id == sa.bindparam("row_id"))
                         .values(last_input=sa.bindparam("shape")),
                         [{"row_id": row_id, "shape": shape} for row_id, shape in changed])
        after = rows[-1][0]


def downgrade() -> None:
    pass  # what was typed is not kept anywhere to put back
