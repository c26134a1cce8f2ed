"""When a guardian's last link came off: ``guardians.unlinked_at``, set by the database itself.

A link goes by ``elimu registry unlink-guardian``, but also with its learner: the foreign key's
``ON DELETE CASCADE`` takes the learner's links with it, whoever deletes the learner and however.
Only the database sees every such removal, so a trigger on ``guardian_links`` records it: after each
link deleted, the guardian's ``unlinked_at`` is set to now if it has no link left. ``elimu purge``
counts the records' age of a guardian left with no learner from it (``services.retention``); a new
link (``importer.learners``) clears it.

PostgreSQL: the trigger locks the guardian's row (``FOR NO KEY UPDATE``: a link being added, which
only holds its key, does not wait) before it looks for links left, so of two transactions taking
off a guardian's last two links at once the second waits for the first to commit and then sees
both gone (without the lock each would see the other's link, and neither set it). ``now()`` is the
transaction's time. SQLite: writes are serialized; the time is written as
SQLAlchemy writes a ``DateTime`` there.

The statements are migration 0009's; ``tests/test_migrations.py`` checks that a migrated database
and one made from the models hold the same trigger.
"""

from __future__ import annotations

from sqlalchemy import Connection, Table, event, text

from .schools import GuardianLink

TRIGGER = "trg_guardian_links_unlinked"
FUNCTION = "guardian_links_mark_unlinked"

CREATE: dict[str, tuple[str, ...]] = {
    "postgresql": (
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
    "sqlite": (
        f"""CREATE TRIGGER {TRIGGER} AFTER DELETE ON guardian_links FOR EACH ROW
BEGIN
    UPDATE guardians SET unlinked_at = strftime('%Y-%m-%d %H:%M:%f000', 'now')
     WHERE id = OLD.guardian_id
       AND NOT EXISTS (SELECT 1 FROM guardian_links WHERE guardian_id = OLD.guardian_id);
END""",
    ),
}

DROP: dict[str, tuple[str, ...]] = {
    "postgresql": (f"DROP TRIGGER IF EXISTS {TRIGGER} ON guardian_links", f"DROP FUNCTION IF EXISTS {FUNCTION}()"),
    "sqlite": (f"DROP TRIGGER IF EXISTS {TRIGGER}",),
}


@event.listens_for(GuardianLink.__table__, "after_create")
def _create(target: Table, connection: Connection, **kw: object) -> None:
    """A schema made from the models (``create_all``, as the tests make theirs) gets the trigger too."""
    for statement in CREATE.get(connection.dialect.name, ()):
        connection.execute(text(statement))


@event.listens_for(GuardianLink.__table__, "after_drop")
def _drop(target: Table, connection: Connection, **kw: object) -> None:
    for statement in DROP.get(connection.dialect.name, ()):
        connection.execute(text(statement))
