"""Webhook authentication at the edge: shared token, source-network allow-list, proxies, body size.

Provider callbacks (every path under ``/ussd/`` and ``/sms/``) must carry ``?token=`` equal to
``ELIMU_WEBHOOK_TOKEN`` (compared in constant time) when it is set, and may be limited to source
networks. Outside development the simulator (``/simulator``, when served) is checked the same
way: its API acts in any phone's name as a callback does. Refusals are 403 with no detail, so a prober learns nothing, and come before the body
is read (a refused body over the limit is a 403, not a 413).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from flask import Flask, Response, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from . import logs
from .metrics import CALLBACKS_REFUSED

if TYPE_CHECKING:
    from .config import Settings

log = logging.getLogger(__name__)

CALLBACK_PREFIXES = ("/ussd/", "/sms/")
SIMULATOR_PREFIXES = ("/simulator",)


def is_callback(path: str) -> bool:
    return path.startswith(CALLBACK_PREFIXES)


class CallbackGuard:
    """The token and source-network checks of provider callbacks, built once from the settings;
    used by the Flask hook below and by the callback fast path (``gateway.fastpath``)."""

    def __init__(self, webhook_token: str | None, allowed_networks: Sequence[str],
                 also_guarded: tuple[str, ...] = ()) -> None:
        self.token = webhook_token.encode() if webhook_token else None
        self.networks = [ipaddress.ip_network(n) for n in allowed_networks]
        self.prefixes = CALLBACK_PREFIXES + also_guarded  # paths checked like a callback

    def refusal(self, path: str, remote_addr: str | None, given_token: Callable[[], str | None]) -> str | None:
        """Why a request to ``path`` is refused (``network`` or ``token``), or None to let it in;
        ``given_token`` reads the request's ``?token=``, only when a callback's token is checked.
        A refusal is counted and logged here."""
        if not path.startswith(self.prefixes):
            return None
        reason = None
        if self.networks and not _allowed(remote_addr, self.networks):
            reason = "network"
            log.warning("callback refused: source network not allowed", extra={"path": path})
        elif self.token is not None and not hmac.compare_digest((given_token() or "").encode(), self.token):
            reason = "token"
            log.warning("callback refused: bad or missing token", extra={"path": path})
        if reason is not None:
            CALLBACKS_REFUSED.labels(reason).inc()
        return reason


# Every answer Flask gives (the simulator, its JSON API, health, metrics, errors): never framed (the
# simulator acts as any phone: a framing page could click it), never sniffed into another type, no
# referrer (the simulator's address carries ``?token=``), nothing loaded; the simulator's page sets
# its own Content-Security-Policy, which allows its inline script and style (``gateway.simulator``).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

FORBIDDEN = "Forbidden\n"  # the whole body of a refusal: a prober learns nothing
NOT_UTF8 = "the body is not UTF-8 form data\n"  # a form is percent-encoded UTF-8 (gateway.fastpath)
GUARD_KEY = "elimu.callback_guard"  # app.extensions: the app's CallbackGuard


def init_app(app: Flask) -> None:
    """Install the checks for the settings of ``app``'s runtime."""
    settings = app.extensions["elimu"].settings
    if settings.trusted_proxies:
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    guard = app.extensions[GUARD_KEY] = CallbackGuard(settings.webhook_token, settings.allowed_networks,
                                                      _also_guarded(settings))
    if not settings.dev_mode and not settings.webhook_token and not settings.allowed_networks:
        # The phone number of a hop is what proves who is calling (a code is good only in its own
        # phone's session): unchecked callbacks let anyone post any number.
        log.warning("provider callbacks are not authenticated: set ELIMU_WEBHOOK_TOKEN or ELIMU_ALLOWED_NETWORKS "
                    "(without them anyone can post a USSD hop or SMS in any phone's name)")

    def _check_callback() -> Response | None:
        if guard.refusal(request.path, request.remote_addr, lambda: request.args.get("token")) is not None:
            g.request_id = logs.new_request_id(request.headers.get("X-Request-ID"))  # echoed by gateway.logs
            return Response(FORBIDDEN, status=403, mimetype="text/plain")
        return None

    app.after_request(_secure_headers)
    # First of the hooks: a refused callback's body is never read (gateway.logs reads the form for
    # its session id, and a body over the limit would be a 413 before the 403).
    app.before_request_funcs.setdefault(None, []).insert(0, _check_callback)


def _secure_headers(response: Response) -> Response:
    """``SECURITY_HEADERS`` on a Flask answer, a header the view set itself kept."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _also_guarded(settings: Settings) -> tuple[str, ...]:
    """Paths checked like a callback besides the callbacks: the simulator outside development (its
    API runs the same hop handler in any phone's name; ``Settings.simulator_served``)."""
    return SIMULATOR_PREFIXES if settings.simulator_served and not settings.dev_mode else ()


def _allowed(remote: str | None, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """Whether ``remote`` is in one of ``networks``; an IPv4-mapped IPv6 address (``::ffff:a.b.c.d``,
    what a dual-stack listener reports for an IPv4 client) is also matched as its IPv4 address."""
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return False
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return any(address in net or (mapped is not None and mapped in net) for net in networks)
