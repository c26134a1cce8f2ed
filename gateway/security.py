"""Webhook authentication at the edge: shared token, source-network allow-list, proxies, body size.

Provider callbacks (every path under ``/ussd/`` and ``/sms/``) must carry ``?token=`` equal to
``ELIMU_WEBHOOK_TOKEN`` (compared in constant time) when it is set, and may be limited to source
networks. Refusals are 403 with no detail, so a prober learns nothing.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging

from flask import Flask, Response, request
from werkzeug.middleware.proxy_fix import ProxyFix

from .metrics import CALLBACKS_REFUSED

log = logging.getLogger(__name__)

CALLBACK_PREFIXES = ("/ussd/", "/sms/")


def is_callback(path: str) -> bool:
    return path.startswith(CALLBACK_PREFIXES)


def init_app(app: Flask) -> None:
    """Install the checks for the settings of ``app``'s runtime."""
    settings = app.extensions["elimu"].settings
    if settings.trusted_proxies:
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    token = settings.webhook_token.encode() if settings.webhook_token else None
    networks = [ipaddress.ip_network(n) for n in settings.allowed_networks]

    @app.before_request
    def _check_callback() -> Response | None:
        if not is_callback(request.path):
            return None
        if networks and not _allowed(request.remote_addr, networks):
            CALLBACKS_REFUSED.labels("network").inc()
            log.warning("callback refused: source network not allowed", extra={"path": request.path})
            return Response("Forbidden\n", status=403, mimetype="text/plain")
        if token is not None:
            given = request.args.get("token", "").encode()
            if not hmac.compare_digest(given, token):
                CALLBACKS_REFUSED.labels("token").inc()
                log.warning("callback refused: bad or missing token", extra={"path": request.path})
                return Response("Forbidden\n", status=403, mimetype="text/plain")
        return None


def _allowed(remote: str | None, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return False
    return any(address in net for net in networks)
