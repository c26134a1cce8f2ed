"""USSD HTTP endpoints: one hop route per provider adapter, and AT's end-of-session events.

The webhook token and network checks for every ``/ussd/`` path are done at the edge
(``gateway.security``), before these views run.
"""

from __future__ import annotations

from collections.abc import Mapping
from time import perf_counter
from typing import Protocol

from flask import Blueprint, Response, abort, current_app, request

from registry.services.accounts import Keys
from registry.services.secrets import derive_key
from registry.services.ussd_services import RegistryServices

from ..metrics import CALLBACKS_MALFORMED, USSD_HOP_SECONDS
from ..plain import TEXT, plain
from ..ratelimit import RateLimiter
from ..runtime import Runtime
from . import africastalking, generic
from .events import event_fields, record_event
from .hops import HopHandler, utc_now
from .messages import BadUssdRequest, UssdAnswer, UssdRequest
from .sessions import SessionStore

bp = Blueprint("ussd", __name__)

class UssdAdapter(Protocol):
    """A provider's wire format: a module (like ``africastalking``) or an object with these two."""

    def parse_hop(self, form: Mapping[str, str]) -> UssdRequest: ...

    def render(self, answer: UssdAnswer) -> tuple[str, str]: ...


# Provider adapters by URL name (``/ussd/<name>``).
ADAPTERS: dict[str, UssdAdapter] = {africastalking.NAME: africastalking}  # type: ignore[dict-item]
GET_ADAPTERS = {generic.NAME}  # the GET-style gateways; AT always POSTs
FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}
HANDLER_KEY = "elimu.ussd"
ADAPTERS_KEY = "elimu.ussd.adapters"


def adapters(runtime: Runtime) -> dict[str, UssdAdapter]:
    """The fixed adapters plus those configured from settings (the generic one), built once."""
    built = runtime.extras.get(ADAPTERS_KEY)
    if not isinstance(built, dict):
        fields = generic.parse_fields(runtime.settings.generic_ussd_fields)
        built = {**ADAPTERS, generic.NAME: generic.GenericAdapter(fields)}
        runtime.extras[ADAPTERS_KEY] = built
    return built


def hop_handler(runtime: Runtime) -> HopHandler:
    """The app's hop handler, built once. ``runtime.extras['clock']`` (a UTC-datetime callable)
    replaces the wall clock, for tests."""
    handler = runtime.extras.get(HANDLER_KEY)
    if isinstance(handler, HopHandler):
        return handler

    def clock():
        return runtime.extras.get("clock", utc_now)()  # type: ignore[operator]

    services = RegistryServices(runtime.db, Keys.from_secret(runtime.settings.secret_key), clock)
    store = SessionStore(runtime.redis, clock=lambda: clock().timestamp(), link=runtime.link,
                         digest_key=derive_key(runtime.settings.secret_key, "ussd-text"))
    handler = HopHandler(store, services, runtime.settings.ussd_code, limiter=RateLimiter(runtime.redis),
                         hops_per_minute=runtime.settings.ussd_hops_per_minute)
    runtime.extras[HANDLER_KEY] = handler
    return handler


def _runtime() -> Runtime:
    return current_app.extensions["elimu"]


def answer_hop(runtime: Runtime, adapter: UssdAdapter, form: Mapping[str, str]) -> tuple[int, str, str]:
    """A hop's status, body and content type: 400 with the reason for a malformed request (counted
    ``malformed`` in ``elimu_callbacks_refused_total``), else the handler's answer. The Flask view
    below and ``gateway.fastpath`` both answer with this."""
    try:
        ussd_request = adapter.parse_hop(form)
    except BadUssdRequest as exc:
        CALLBACKS_MALFORMED.inc()
        return 400, f"{exc}\n", TEXT
    began = perf_counter()  # as USSD_HOP_SECONDS.time() would, without its context manager (3 us a hop)
    try:
        answer = hop_handler(runtime).handle(ussd_request)
    finally:
        USSD_HOP_SECONDS.observe(perf_counter() - began)
    body, content_type = adapter.render(answer)
    return 200, body, content_type


@bp.post("/ussd/<provider>")
def hop(provider: str) -> Response:
    runtime = _runtime()
    adapter = adapters(runtime).get(provider)
    if adapter is None:
        abort(404)
    if (request.method == "POST" and request.mimetype and request.mimetype not in FORM_TYPES
            and not (provider in GET_ADAPTERS and request.args)):
        # not read as a form, so it would be answered as one without fields ('sessionId is required');
        # a GET-style gateway's fields may come in the query string, whatever the body
        CALLBACKS_MALFORMED.inc()
        return plain(f"the body must be a form (application/x-www-form-urlencoded), not {request.mimetype[:100]}\n", 400)
    status, body, content_type = answer_hop(runtime, adapter, request.values if provider in GET_ADAPTERS
                                            else request.form)
    return plain(body, status, content_type)


# Only the GET-style gateways are routed for GET (and HEAD): any other method to AT's hop is a 405
# whose ``Allow`` names POST alone.
@bp.get(f"/ussd/<any({', '.join(sorted(GET_ADAPTERS))}):provider>")
def get_hop(provider: str) -> Response:
    return hop(provider)


@bp.post("/ussd/africastalking/events")
def session_event() -> Response:
    """200 for every event: one without a session id is ignored; one that cannot be stored now
    (database down) propagates to ``gateway.degraded``, which spools it, answers 200, and replays it."""
    fields = event_fields(request.form)
    if fields is not None:
        record_event(_runtime().db, fields)
    return plain("OK", 200)
