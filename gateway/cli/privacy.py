"""``elimu privacy``: a data subject's requests about a phone number (Data Protection Act 2019).

``export`` answers a subject access request (s.26) with everything held about the phone; ``erase``
answers an erasure request or objection (s.40) by removing what the service created and no law
needs kept (``registry.services.subject_rights``), and the phone's state in Redis here (the
registry has no Redis).
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Iterator

import click
import orjson
import redis as redis_lib
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.models import Learner
from registry.services.audit import record_disclosure
from registry.services.subject_rights import Erasure, erase, erasure_preview, export_record, subject_data

from . import Context, pass_context
from .audit import audited_phone

SESSION_KEYS = "ussd:s:*"  # gateway.ussd.sessions.SessionStore: one JSON record per session, naming its phone
SCAN_COUNT = 1000
EXPORTED_ACTION = "data_exported"


@click.group("privacy")
def privacy_group() -> None:
    """A data subject's requests about a phone number: access and erasure."""


@privacy_group.command("export")
@click.argument("msisdn")
@click.option("--json", "as_json", is_flag=True, help="one JSON object")
@pass_context
def export_command(ctx: Context, msisdn: str, as_json: bool) -> None:
    """Everything the service holds about MSISDN (any E.164 number), for a subject access request:
    the guardian record, its learners, settings, codes, messages, USSD sessions and audit rows.
    Never a PIN or code hash, an OTP's text or a purged body, nor a learner's UPI, name or school
    for a link the phone has not verified (the link and its dates are shown, the details withheld).
    The export is in the audit trail (`data_exported`, one row per learner it names, with the
    operator's login)."""
    phone = audited_phone(msisdn, "MSISDN")
    with ctx.runtime.db.transaction() as session:
        record = export_record(subject_data(session, phone))
        if record["held"]:  # nothing held, nothing disclosed: no row naming a phone the service did not know
            audit_export(session, phone, [ln["upi"] for ln in record["learners"] if ln["upi"] is not None])
    if as_json:
        click.echo(json.dumps(record))
    elif not record["held"]:
        click.echo(f"the service holds nothing about {phone}")
    else:
        for line in report_lines(record):
            click.echo(line)


def audit_export(session: Session, phone: str, upis: list[str]) -> None:
    """Record that what is held about ``phone`` was shown to the operator: one ``data_exported`` row
    per learner the export names (found by ``elimu audit --learner``), or one with no learner."""
    ids = session.scalars(select(Learner.id).where(Learner.upi.in_(upis)).order_by(Learner.id)).all() if upis else []
    for learner_id in ids or [None]:
        record_disclosure(session, phone=phone, learner_id=learner_id, action=EXPORTED_ACTION, channel="cli",
                          detail=f"subject access export by {operator()}")


def operator() -> str:
    """Who ran the command: the login behind sudo, else this process's user."""
    try:
        return os.environ.get("SUDO_USER") or getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment nor the password database
        return f"uid {os.getuid()}"


def report_lines(record: dict) -> Iterator[str]:
    """The export as a report a person reads (and may send on to whoever holds the phone: it names
    no learner the phone has not verified)."""
    yield f"Data held about {record['phone']} (Data Protection Act 2019, s.26)"
    guardian = record["guardian"]
    if guardian is not None:
        account = f"account active since {guardian['activated_at']}" if guardian["active"] else "no active account"
        pin = "PIN set" if guardian["pin_set"] else "no PIN"
        if guardian.get("pin_entered_at"):
            pin += f", last entered {guardian['pin_entered_at']}"
        yield f"Guardian record (from the school's import): {guardian['name'] or '(no name)'}; {account}; {pin}"
    yield from _section("Learners linked", record["learners"], lambda ln: (
        (f"{ln['upi']}  {ln['name']}  {ln['school']}  " if ln["verified"] else f"({ln['withheld']})  ")
        + f"{ln['relationship']}  " + (f"verified {ln['verified_at']}" if ln["verified"] else "not verified")
        + f"  linked {ln['linked_at'] or '-'}"))
    settings = record["settings"]
    if settings is not None:
        stop = "announcements stopped (STOP)" if settings["opted_out"] else "announcements on"
        yield f"Settings: language {settings['language']}; {stop}"
    yield from _section("One-time codes (kept only as hashes)", record["one_time_codes"], lambda c: (
        f"{c['purpose']}  created {c['created_at']}  expires {c['expires_at']}  used {c['used_at'] or '-'}"))
    yield from _section("Messages sent to it", record["messages_sent"], lambda m: (
        f"#{m['id']}  {m['kind']}  {m['status']}  {m['created_at']}  delivered {m['delivered_at'] or '-'}  "
        f"{_text(m['body'])}"))
    yield from _section("Messages received from it", record["messages_received"], lambda m: (
        f"#{m['id']}  {m['received_at']}  {m['command'] or '-'}  {_text(m['text'])}"))
    yield from _section("USSD sessions (inputs as their shape: choices kept, longer inputs as [length])",
                        record["ussd_sessions"], lambda e: (
        f"{e['at']}  {e['session_id']}  {e['status'] or '-'}  {e['hops'] or 0} hops  {e['input_shape'] or '-'}"))
    yield from _section("Audit trail (who was shown which learner's data)", record["audit"], lambda a: (
        f"{a['at']}  {a['learner'] or '-'}  {a['action']}  {a['channel']}  {a['reference'] or ''} "
        f"{a['detail'] or ''}".rstrip()))


def _section(title: str, rows: list[dict], line) -> Iterator[str]:  # noqa: ANN001
    if rows:
        yield f"{title} ({len(rows)}):"
        yield from (f"  {line(row)}" for row in rows)


def _text(body: str | None) -> str:
    return json.dumps(body, ensure_ascii=False) if body is not None else "(text not kept)"


@privacy_group.command("erase")
@click.argument("msisdn")
@click.option("--yes", is_flag=True, help="erase without asking")
@pass_context
def erase_command(ctx: Context, msisdn: str, yes: bool) -> None:
    """Erase what the service created about MSISDN, for an erasure request or objection: its
    account (activation, PIN), verified marks, settings (a STOP is kept), one-time codes, message
    texts, USSD session events and its state in Redis; messages still queued for it are not sent. Keeps the school's records and the audit
    trail. Exit 1 when the service holds nothing about the phone."""
    phone = audited_phone(msisdn, "MSISDN")
    runtime = ctx.runtime
    with runtime.db.session() as session:
        record = export_record(subject_data(session, phone))
        planned = erasure_preview(session, phone)
    keys = phone_keys(runtime.redis, phone)
    if not record["held"] and not keys:
        raise click.ClickException(f"the service holds nothing about {phone}: nothing to erase")
    if not planned.total and not keys:
        click.echo(f"nothing left to erase about {phone}")
        _echo_kept(record, planned)
        return
    click.echo(f"Erasure for {phone} (Data Protection Act 2019, s.40) will remove:")
    _echo_erased(planned, len(keys))
    _echo_kept(record, planned)
    if not yes:
        click.confirm("Erase it?", abort=True)
    with runtime.db.transaction() as session:
        erased = erase(session, phone)
        removed = delete_keys(runtime.redis, phone_keys(runtime.redis, phone))  # a Redis failure undoes it all
    click.echo(f"erased (in the audit trail as data_erased): {erased.total} database items, {removed} Redis keys")
    if runtime.settings.embedded_redis:
        click.echo("note: REDIS_URL is unset: the running service's in-process Redis is not reachable from here; "
                   "its sessions end within minutes and its rate limits within a day")


def _echo_erased(planned: Erasure, keys: int) -> None:
    for count, what in (
        (planned.account, "the account's activation and PIN (no longer active; PIN, lockouts gone)"),
        (planned.verified_links, "verified mark(s) on its links to learners"),
        (planned.settings, "its phone settings (language)"),
        (planned.one_time_codes, "one-time code(s)"),
        (planned.withdrawn, "message(s) still queued for it, not sent (their texts are among those below)"),
        (planned.outbound_bodies, "text(s) of messages sent to it (the rows stay: billing records)"),
        (planned.inbound_texts, "text(s) of messages received from it"),
        (planned.session_events, "USSD session event(s)"),
        (keys, "Redis key(s): USSD sessions and resume point, rate limits"),
    ):
        if count:
            click.echo(f"  {count} {what}")


def _echo_kept(record: dict, planned: Erasure) -> None:
    click.echo("It keeps:")
    if record["guardian"] is not None:
        click.echo(f"  the school's records: the guardian's name and phone and its links to "
                   f"{len(record['learners'])} learner(s), from the school's import (a wrong number: "
                   "elimu registry unlink-guardian UPI MSISDN, and the school corrects its file)")
    if planned.kept_opt_out:
        click.echo("  the STOP opt-out: announcements stay stopped")
    if record["messages_sent"] or record["messages_received"]:
        click.echo("  the message rows (ids, kinds, statuses, dates, costs): billing records")
    if planned.waiting_messages:
        click.echo(f"  the text of {planned.waiting_messages} message(s) still being sent or answered: "
                   "run this again once they are done")
    click.echo(f"  the audit trail ({len(record['audit'])} rows naming the phone): the record of who saw what")


def phone_key_patterns(phone: str) -> list[str]:
    """The Redis keys named by the phone: the USSD resume point (``gateway.ussd.sessions``), the
    rate limits (``gateway.ratelimit``, ``workers.inbound.RedisGate``), the SMS reply slots and the
    development outbox's inbox."""
    from workers.backends.outbox import INBOX_KEY
    from workers.inbound import UNKNOWN_REPLY_KEY, RedisGate

    windowed = (RedisGate.RESULTS_KEY, RedisGate.INBOUND_KEY, RedisGate.TOO_MANY_KEY)
    return [f"ussd:resume:{phone}", f"elimu:rl:*:{phone}:*", INBOX_KEY.format(phone=phone),
            UNKNOWN_REPLY_KEY.format(phone=phone), *(key.format(phone=phone, window="*") for key in windowed)]


def phone_keys(redis: redis_lib.Redis, phone: str) -> list[str]:
    """Every Redis key holding state of ``phone``: those named by it and its live USSD sessions."""
    named = [key for pattern in phone_key_patterns(phone) for key in _scan(redis, pattern)]
    return sorted(set(named) | set(_session_keys(redis, phone)))


def _session_keys(redis: redis_lib.Redis, phone: str) -> Iterator[str]:
    keys = list(_scan(redis, SESSION_KEYS))
    for start in range(0, len(keys), SCAN_COUNT):
        chunk = keys[start:start + SCAN_COUNT]
        yield from (key for key, raw in zip(chunk, redis.mget(chunk), strict=True)
                    if raw is not None and _phone_of(raw) == phone)


def _phone_of(raw: bytes) -> str | None:
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return record.get("phone") if isinstance(record, dict) else None


def _scan(redis: redis_lib.Redis, pattern: str) -> Iterator[str]:
    for key in redis.scan_iter(match=pattern, count=SCAN_COUNT):
        yield key.decode() if isinstance(key, bytes) else key


def delete_keys(redis: redis_lib.Redis, keys: list[str]) -> int:
    return int(redis.delete(*keys)) if keys else 0


commands = [privacy_group]
