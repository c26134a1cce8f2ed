"""The two hottest callbacks answered in front of Flask: USSD hops and inbound SMS.

A results day brings a million hops and as many texts. Under gunicorn a callback through Flask
costs 1.2-1.3 ms of CPU, of which Flask's request and app contexts, routing, hooks and cookie
sessions take a fifth to a third. This WSGI layer answers ``POST /ussd/<provider>`` and
``POST /sms/africastalking/inbound`` with the same rules and the same code as the Flask views
(``answer_hop`` and ``answer_inbound``): about 0.9 ms a hop instead of 1.3, 1.0 ms an inbound
SMS instead of 1.24 (``bench/README.md``). It keeps:

- the webhook token and source-network checks (``gateway.security.CallbackGuard``), before the body
  is read;
- the body limit, the request id (``X-Request-ID``, echoed) and the session id in the log context;
- a failure answered as ``gateway.degraded`` answers it: the busy END for a hop, a 503 with
  ``Retry-After`` for an inbound SMS.

A request it does not fully recognise (another method or path, a GET-style gateway, a body that
is not a form with a length within the limit) goes to Flask untouched, so every other answer
(404, 405, 413...) stays Flask's. A form POSTed to any callback (events and delivery reports too)
whose bytes are not UTF-8 is answered here, 400 with that reason, after the webhook checks:
werkzeug would read it as an empty form, and the answer would name missing fields. Each 400 is
counted ``malformed`` in ``elimu_callbacks_refused_total``, as the views count theirs, and a 413
(a chunked body over the limit) ``too_large``, as the app's error handler counts Flask's. Installed
inside ``ProxyFix``, so the client address it checks is the one Flask would see.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import werkzeug.urls  # noqa: F401 - registers the "werkzeug.url_quote" codec error handler used below

from . import degraded, logs, security
from .metrics import CALLBACKS_MALFORMED, CALLBACKS_TOO_LARGE
from .plain import TEXT
from .sms.routes import answer_inbound
from .ussd.routes import GET_ADAPTERS, adapters, answer_hop

if TYPE_CHECKING:
    from flask import Flask

USSD_PREFIX = "/ussd/"
INBOUND_SMS = "/sms/africastalking/inbound"
FORM_TYPE = "application/x-www-form-urlencoded"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
View = Callable[[Mapping[str, str]], tuple[int, str, str]]  # form -> status, body, content type


def first_values(encoded: str) -> dict[str, str]:
    """A query string or form body as werkzeug reads it (blank values kept, invalid bytes left
    percent-encoded), first value of each name, as ``MultiDict.get`` gives it.

    ``urllib.parse.parse_qsl`` with ``keep_blank_values``, field by field: a name or value with
    no ``%`` or ``+`` is taken as it is, and a later value of a name already seen is not decoded
    (a hop's five fields in 9 us instead of 15)."""
    fields: dict[str, str] = {}
    for field in encoded.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        if "%" in name or "+" in name:
            name = _decoded(name)
        if name not in fields:
            fields[name] = _decoded(value) if "%" in value or "+" in value else value
    return fields


# Every escape of an ASCII character (%00-%7F, either case): its own one-byte UTF-8 character
_ASCII_ESCAPES = {f"{high}{low}": chr(int(f"{high}{low}", 16))
                  for high in "01234567" for low in "0123456789abcdefABCDEF"}


def _decoded(part: str) -> str:
    """``part`` decoded as werkzeug decodes it. A hop's escapes are of ASCII characters (the phone's
    ``%2B``, the text's ``%2A``, the code's ``%23``), each one character whatever follows: they are
    replaced directly (under 2 us a field instead of 4-6 in ``unquote``); any other escape (a byte
    of a longer UTF-8 character, an invalid one, a ``%`` without two hex digits) is left to ``unquote``."""
    part = part.replace("+", " ")
    head, *escaped = part.split("%")
    pieces = [head]
    for piece in escaped:
        char = _ASCII_ESCAPES.get(piece[:2])
        if char is None:
            return unquote(part, errors="werkzeug.url_quote")
        pieces.append(char)
        pieces.append(piece[2:])
    return "".join(pieces)


class CallbackFastPath:
    """WSGI middleware over the Flask app's ``wsgi_app`` (see the module docstring)."""

    def __init__(self, app: Flask, downstream: WsgiApp) -> None:
        self.app = app
        self.downstream = downstream
        self.runtime = app.extensions["elimu"]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        view = self._view_for(environ)
        if view is None and not self._form_callback(environ):
            return self.downstream(environ, start_response)
        request_id = logs.new_request_id(environ.get("HTTP_X_REQUEST_ID"))
        guard: security.CallbackGuard = self.app.extensions[security.GUARD_KEY]
        path = environ["PATH_INFO"]
        def query_token() -> str | None:
            return first_values(environ.get("QUERY_STRING", "")).get("token")

        if guard.refusal(path, environ.get("REMOTE_ADDR"), query_token) is not None:
            return _answer(start_response, 403, security.FORBIDDEN, request_id)
        body, refusal = self._body(environ)
        if refusal is not None:
            # a 400 (cut short of its length) or a 413 (a chunked body over the limit)
            (CALLBACKS_MALFORMED if refusal[0] == 400 else CALLBACKS_TOO_LARGE).inc()
            return _answer(start_response, *refusal, request_id)
        try:
            form = first_values(body.decode())
        except UnicodeDecodeError:
            CALLBACKS_MALFORMED.inc()
            return _answer(start_response, 400, security.NOT_UTF8, request_id)
        if view is None:  # a callback Flask answers, its body read and found UTF-8
            environ["wsgi.input"] = io.BytesIO(body)
            return self.downstream(environ, start_response)
        request_token = logs.request_id_var.set(request_id)
        session_token = logs.session_id_var.set(form.get("sessionId", "")[:64] or None)
        try:
            status, text, content_type = view(form)
            return _answer(start_response, status, text, request_id, content_type)
        except Exception as exc:  # noqa: BLE001 - answered as gateway.degraded answers a failed callback
            status, text, headers = degraded.failed_callback(path, exc)
            return _answer(start_response, status, text, request_id, TEXT, headers)
        finally:
            logs.session_id_var.reset(session_token)
            logs.request_id_var.reset(request_token)

    def _form_callback(self, environ: dict[str, Any]) -> bool:
        """Whether this is a form POSTed to a provider callback, with a length within the limit
        (or sent in chunks, its length then checked as it is read)."""
        if environ.get("REQUEST_METHOD") != "POST" or not security.is_callback(environ.get("PATH_INFO", "")):
            return False
        length = environ.get("CONTENT_LENGTH", "")
        limit = self.app.config.get("MAX_CONTENT_LENGTH")
        if length.isdigit():
            if limit is not None and int(length) > limit:
                return False
        elif length or environ.get("HTTP_TRANSFER_ENCODING", "").lower() != "chunked":
            return False
        return environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower() == FORM_TYPE

    def _body(self, environ: dict[str, Any]) -> tuple[bytes, tuple[int, str] | None]:
        """The request's body, or why it is refused: one that ended before its ``Content-Length``
        (a client gone mid-request: acting on part of a text or a hop would be acting on what was
        never sent), or a chunked one over the limit."""
        length = environ.get("CONTENT_LENGTH", "")
        if length.isdigit():
            body = environ["wsgi.input"].read(int(length))
            if len(body) != int(length):
                return body, (400, f"the body ended after {len(body)} of its {length} bytes\n")
            return body, None
        limit = self.app.config.get("MAX_CONTENT_LENGTH") or 16 * 1024
        body = environ["wsgi.input"].read(limit + 1)
        if len(body) > limit:
            return body, (413, f"the body is over {limit} bytes\n")
        return body, None

    def _view_for(self, environ: dict[str, Any]) -> View | None:
        """The view of a callback this layer answers, or None to leave the request to Flask."""
        path: str = environ.get("PATH_INFO", "")
        if not path.startswith((USSD_PREFIX, INBOUND_SMS)) or not self._form_callback(environ):
            return None
        if path == INBOUND_SMS:
            return lambda form: (*answer_inbound(self.runtime, form), TEXT)
        if not path.startswith(USSD_PREFIX):
            return None
        name = path[len(USSD_PREFIX):]
        adapter = None if "/" in name or name in GET_ADAPTERS else adapters(self.runtime).get(name)
        if adapter is None:
            return None
        return lambda form: answer_hop(self.runtime, adapter, form)


def _answer(start_response: Callable[..., Any], status: int, text: str, request_id: str,
            content_type: str = TEXT, headers: Mapping[str, str] | None = None) -> list[bytes]:
    data = text.encode()
    start_response(_status_line(status), [("Content-Type", content_type), ("Content-Length", str(len(data))),
                                          *(headers or {}).items(), ("X-Request-ID", request_id)])
    return [data]


@cache
def _status_line(status: int) -> str:
    return f"{status} {HTTPStatus(status).phrase.upper()}"
