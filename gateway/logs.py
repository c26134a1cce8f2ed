"""Logging: JSON lines (production) or text (development), with request and session ids.

Log records never carry personal data: the code logs ids and outcomes, not names, UPIs, OTPs or
PINs, and ``RedactingFilter`` masks phone numbers and long digit runs as a second line of defence
(``RedactingFormatter`` does the same in tracebacks). Database errors carry no statement
parameters at all (``registry.db.make_engine``'s ``hide_parameters``), and the row or key values
PostgreSQL quotes in their DETAIL line are masked.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

from flask import Flask, g, request

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
session_id_var: ContextVar[str | None] = ContextVar("session_id", default=None)

# gunicorn's access log line: the path without its query string (``%(U)s``; ``%(r)s``, its default,
# is the whole request line), which holds the webhook token and a GET callback's fields (phone
# numbers, what the caller typed)
ACCESS_LOG_FORMAT = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s'

_PHONE = re.compile(r"\+?254\d{9}|\b0[17]\d{8}\b")
_DIGITS = re.compile(r"\b\d{6,}\b")
# PostgreSQL's DETAIL line quotes what failed, which ``hide_parameters`` does not hide: the key of a
# violated unique or foreign key (``Key (upi)=(QW7E9R) already exists``) or the whole row of a failed
# NOT NULL or CHECK (``Failing row contains (3, QW7E9R, Achieng, ...)``): names, UPIs, dates of birth.
_PG_DETAIL = re.compile(r"(DETAIL:.*?(?:=|contains ))\(.*\)")
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def redact(text: str) -> str:
    """Mask phone numbers (keep the last 3 digits), other runs of 6+ digits (OTPs, index numbers) and
    the values a database error's DETAIL quotes."""
    if "DETAIL:" in text:
        text = _PG_DETAIL.sub(r"\1(...)", text)
    text = _PHONE.sub(lambda m: "+254******" + m.group(0)[-3:], text)
    return _DIGITS.sub(lambda m: "#" * len(m.group(0)), text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        for key, value in list(record.__dict__.items()):
            if key not in _RESERVED and isinstance(value, str):
                setattr(record, key, redact(value))
        record.request_id = request_id_var.get()
        record.session_id = session_id_var.get()
        return True


class RedactingFormatter(logging.Formatter):
    """Tracebacks redacted like messages: an exception's text can quote what it failed on."""

    def formatException(self, ei) -> str:  # noqa: N802 - logging's name
        return redact(super().formatException(ei))

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info:  # another handler may have cached its unredacted text on the record
            record.exc_text = self.formatException(record.exc_info)
        return super().format(record)


class JsonFormatter(RedactingFormatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and value is not None and not key.startswith("_"):
                entry[key] = value if isinstance(value, (int, float, bool)) else str(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    """Install one handler on the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, "_elimu", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._elimu = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            RedactingFormatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root.addHandler(handler)
    root.setLevel(level)


def new_request_id(given: str | None) -> str:
    """The proxy's ``X-Request-ID`` (cut to 64 characters) or a fresh random one."""
    return (given or "")[:64] or os.urandom(8).hex()  # 16 hex digits; uuid4's took 3 us, this 0.6


def init_app(app: Flask) -> None:
    """Give every request an id (``X-Request-ID`` if the proxy set one) and echo it back."""

    @app.before_request
    def _request_id() -> None:
        rid = g.request_id = new_request_id(request.headers.get("X-Request-ID"))
        g._request_token = request_id_var.set(rid)
        g._session_token = session_id_var.set(request.form.get("sessionId", "")[:64] or None)

    @app.after_request
    def _echo(response):
        rid = g.get("request_id")
        if rid:
            response.headers["X-Request-ID"] = rid
        return response
