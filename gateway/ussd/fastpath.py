"""USSD hops answered in front of Flask: the hottest endpoint, without Flask's per-request work.

A results day brings a million hops. Under gunicorn a hop through Flask costs 1.1-1.3 ms of CPU,
of which Flask's request and app contexts, routing, hooks and cookie sessions take about a third;
this WSGI layer answers ``POST /ussd/<provider>`` with the same rules and the same code as the
Flask view (``gateway.ussd.routes.hop``), in 0.8 ms (``bench/README.md``):

- the webhook token and source-network checks (``gateway.security.CallbackGuard``), before the body
  is read;
- the body limit, the request id (``X-Request-ID``, echoed) and the session id in the log context;
- the provider's adapter, the hop handler and its metrics; a bad request is a 400 with the reason,
  anything unexpected the polite busy END of ``gateway.degraded``.

A request it does not fully recognise (another method or path, a GET-style gateway, a body that
is not a form with a length within the limit) goes to Flask untouched, so every other answer
(404, 405, 413...) stays Flask's. Installed inside ``ProxyFix``, so the client address it checks
is the one Flask would see.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import werkzeug.urls  # noqa: F401 - registers the "werkzeug.url_quote" codec error handler used below

from .. import degraded, logs, security
from ..metrics import USSD_HOP_SECONDS
from .messages import BadUssdRequest
from .routes import GET_ADAPTERS, adapters, hop_handler

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)

PREFIX = "/ussd/"
FORM_TYPE = "application/x-www-form-urlencoded"
_TEXT = "text/plain; charset=utf-8"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def first_values(encoded: str) -> dict[str, str]:
    """A query string or form body as werkzeug reads it (blank values kept, invalid bytes left
    percent-encoded), first value of each name, as ``MultiDict.get`` gives it."""
    fields: dict[str, str] = {}
    for name, value in parse_qsl(encoded, keep_blank_values=True, errors="werkzeug.url_quote"):
        fields.setdefault(name, value)
    return fields


class HopFastPath:
    """WSGI middleware over the Flask app's ``wsgi_app`` (see the module docstring)."""

    def __init__(self, app: Flask, downstream: WsgiApp) -> None:
        self.app = app
        self.downstream = downstream
        self.runtime = app.extensions["elimu"]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        adapter = self._adapter_for(environ)
        if adapter is None:
            return self.downstream(environ, start_response)
        request_id = logs.new_request_id(environ.get("HTTP_X_REQUEST_ID"))
        guard: security.CallbackGuard = self.app.extensions[security.GUARD_KEY]
        path = environ["PATH_INFO"]
        query = first_values(environ.get("QUERY_STRING", "")) if guard.token is not None else {}
        if guard.refusal(path, environ.get("REMOTE_ADDR"), query.get("token")) is not None:
            return _answer(start_response, "403 FORBIDDEN", security.FORBIDDEN, request_id)
        body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        try:
            form = first_values(body.decode())
        except UnicodeDecodeError:  # Flask answers it as it always has
            environ["wsgi.input"] = io.BytesIO(body)
            return self.downstream(environ, start_response)
        request_token = logs.request_id_var.set(request_id)
        session_token = logs.session_id_var.set(form.get("sessionId", "")[:64] or None)
        try:
            try:
                ussd_request = adapter.parse_hop(form)
            except BadUssdRequest as exc:
                return _answer(start_response, "400 BAD REQUEST", f"{exc}\n", request_id)
            with USSD_HOP_SECONDS.time():
                answer = hop_handler(self.runtime).handle(ussd_request)
            text, content_type = adapter.render(answer)
            return _answer(start_response, "200 OK", text, request_id, content_type)
        except Exception:  # noqa: BLE001 - as gateway.degraded answers a failed hop: a polite END
            log.exception("unhandled error on %s", path)
            return _answer(start_response, "200 OK", degraded.busy_ussd_body(), request_id)
        finally:
            logs.session_id_var.reset(session_token)
            logs.request_id_var.reset(request_token)

    def _adapter_for(self, environ: dict[str, Any]) -> Any:
        """The adapter of a hop this layer answers, or None to leave the request to Flask."""
        path: str = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "POST" or not path.startswith(PREFIX):
            return None
        name = path[len(PREFIX):]
        if "/" in name or name in GET_ADAPTERS:
            return None
        length = environ.get("CONTENT_LENGTH", "")
        limit = self.app.config.get("MAX_CONTENT_LENGTH")
        if not length.isdigit() or (limit is not None and int(length) > limit):
            return None
        if environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower() != FORM_TYPE:
            return None
        return adapters(self.runtime).get(name)


def _answer(start_response: Callable[..., Any], status: str, text: str, request_id: str,
            content_type: str = _TEXT) -> list[bytes]:
    data = text.encode()
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data))),
                            ("X-Request-ID", request_id)])
    return [data]

