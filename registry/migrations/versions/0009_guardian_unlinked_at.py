"""when a guardian's last link came off

``elimu purge`` forgets a guardian row linked to no learner once the records' age has passed, but
the schema recorded no time a link came off, so the row's own ``updated_at`` judged: a guardian
untouched for six years whose last learner was deleted today went at the next purge, and one whose
row was touched yesterday stayed five years though nothing linked it. ``guardians.unlinked_at``
now records it, set by a trigger on ``guardian_links`` after every link deleted, by any path (an
operator's unlink, a learner deleted with its links by the foreign key's cascade), when the
guardian has none left (``registry.models.unlinking``, whose statements these are); the importer
clears it when it links the guardian again.

The guardians already left with no link get the latest time the records show of them: the later of
the last ``guardian_unlinked`` audit row of the phone (``unlink-guardian``: the moment a link came
off) and the row's ``updated_at``. A link that went with its learner left no time anywhere; what
these two give is what the purge counted from until now (it kept a row with an audit row of its
phone, or a change, within the age), so the upgrade forgets no row sooner than the rule it
replaces would have. Counting every such row from the upgrade instead would keep a guardian
unlinked four years ago for five more, past any age the data can support.

On PostgreSQL a nullable column with no default (a catalogue change under a moment's ``ACCESS
EXCLUSIVE`` lock of ``guardians``) and the trigger (``SHARE ROW EXCLUSIVE`` on ``guardian_links``)
commit first; then one ``UPDATE`` outside that transaction reads every guardian for a link (an
anti-join) and writes the few with none (an import links every guardian it makes), holding only
their row locks. That ``UPDATE`` giving up on a row lock (the lock timeout) leaves the revision
unrecorded and is retried: the retry finds the column and the trigger committed, and makes them
again only when missing. The downgrade drops the trigger and the column; on SQLite with ``ALTER TABLE ...
DROP COLUMN`` (3.35): a batch copy would drop ``guardians``, whose cascade would take every link
and PIN session with it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 06:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

TRIGGER = 'trg_guardian_links_unlinked'
FUNCTION = 'guardian_links_mark_unlinked'
CREATE = {
    'postgresql': (
        f"""CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM guardians WHERE id = OLD.guardian_id FOR NO KEY UPDATE;
    UPDATE guardians SET unlinked_at = now()
     WHERE id = OLD.guardian_id
       AND NOT EXISTS (SELECT 1 FROM guardian_links WHERE guardian_id = OLD.guardian_id);
    RETURN NULL;
END
$$""",
        f"CREATE TRIGGER {TRIGGER} AFTER DELETE ON guardian_links FOR EACH ROW EXECUTE FUNCTION {FUNCTION}()",
    ),
    'sqlite': (
        f"""CREATE TRIGGER {TRIGGER} AFTER DELETE ON guardian_links FOR EACH ROW
BEGIN
    UPDATE guardians SET unlinked_at = strftime('%Y-%m-%d %H:%M:%f000', 'now')
     WHERE id = OLD.guardian_id
       AND NOT EXISTS (SELECT 1 FROM guardian_links WHERE guardian_id = OLD.guardian_id);
END""",
    ),
}
DROP = {
    'postgresql': (f"DROP TRIGGER IF EXISTS {TRIGGER} ON guardian_links", f"DROP FUNCTION IF EXISTS {FUNCTION}()"),
    'sqlite': (f"DROP TRIGGER IF EXISTS {TRIGGER}",),
}
LAST_UNLINKED = ("(SELECT max(a.at) FROM audit_events a "
                 "WHERE a.phone = guardians.phone AND a.action = 'guardian_unlinked')")
LATEST = {
    'postgresql': f"GREATEST(updated_at, {LAST_UNLINKED})",  # GREATEST skips a NULL
    'sqlite': f"max(updated_at, coalesce({LAST_UNLINKED}, updated_at))",  # as SQLAlchemy writes them: text in order
}


def upgrade() -> None:
    ctx = op.get_context()
    dialect = ctx.dialect.name
    if dialect == 'postgresql':
        # A backfill that gave up on a lock is retried (registry.migrate) after the column and the
        # trigger have committed: the retry finds them there, and makes them again only if missing.
        op.execute("ALTER TABLE guardians ADD COLUMN IF NOT EXISTS unlinked_at TIMESTAMP WITH TIME ZONE")
        op.execute(DROP[dialect][0])
    else:
        op.add_column('guardians', sa.Column('unlinked_at', sa.DateTime(timezone=True), nullable=True))
    for statement in CREATE[dialect]:
        op.execute(statement)
    # Only the rows the trigger has not marked: a link taken off once it is in place has its time.
    backfill = (f"UPDATE guardians SET unlinked_at = {LATEST[dialect]} WHERE unlinked_at IS NULL "
                "AND NOT EXISTS (SELECT 1 FROM guardian_links l WHERE l.guardian_id = guardians.id)")
    if dialect != 'postgresql' or ctx.as_sql:
        op.execute(backfill)
        return
    # PostgreSQL: the column and the trigger commit first, letting go of their locks (guardians'
    # ACCESS EXCLUSIVE stops every USSD hop that reads an account); the scan runs after, on its own.
    with ctx.autocommit_block():
        op.execute(backfill)


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    for statement in DROP[dialect]:
        op.execute(statement)
    if dialect == 'sqlite':
        op.execute("ALTER TABLE guardians DROP COLUMN unlinked_at")
    else:
        op.drop_column('guardians', 'unlinked_at')
