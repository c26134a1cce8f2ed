"""The Flask application factory."""

from __future__ import annotations

import importlib

from flask import Flask, jsonify, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException

from . import degraded, logs, security
from .config import Settings
from .fastpath import CallbackFastPath
from .logs import configure_logging
from .metrics import CALLBACKS_TOO_LARGE
from .plain import plain
from .runtime import Runtime

# Blueprints by module; each module exposes ``bp``.
BLUEPRINTS = (
    "gateway.health",
    "gateway.ussd.routes",
    "gateway.sms.routes",
    "gateway.metrics",
    "gateway.simulator",
)


class CallbackFriendlySessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, without building the signer (a key derivation) for a request
    that carries no session cookie, which is every provider callback: the same empty session."""

    def open_session(self, app, request):
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


def create_app(
    settings: Settings | None = None, runtime: Runtime | None = None, *, start_embedded_worker: bool = False
) -> Flask:
    """Build the web app. Pass ``runtime`` to share one with tests; ``start_embedded_worker`` runs
    the SMS worker in a thread of this process (embedded Redis only)."""
    settings = settings or (runtime.settings if runtime else Settings.from_env())
    runtime = runtime or Runtime.build(settings, serving=True)
    app = Flask(__name__, instance_path=str(settings.instance_path.resolve()))
    app.config.update(SECRET_KEY=settings.secret_key, MAX_CONTENT_LENGTH=settings.max_body_bytes)
    app.extensions["elimu"] = runtime
    app.session_interface = CallbackFriendlySessions()
    configure_logging(settings.log_format)
    logs.init_app(app)
    # USSD hops and inbound SMS are answered in front of Flask, with the same checks (inside ProxyFix)
    app.wsgi_app = CallbackFastPath(app, app.wsgi_app)  # type: ignore[method-assign]
    security.init_app(app)
    degraded.init_app(app)

    for module_name in BLUEPRINTS:
        app.register_blueprint(importlib.import_module(module_name).bp)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        headers = {name: value for name, value in exc.get_headers() if name.lower() != "content-type"}  # Allow...
        if security.is_callback(request.path):  # a provider reads a callback's answer as one line of text
            if exc.code == 413:  # over ELIMU_MAX_BODY_BYTES (the fast path counts its own)
                CALLBACKS_TOO_LARGE.inc()
            return plain(f"{exc.name}: {' '.join(str(exc.description).split())}\n", exc.code or 500, headers=headers)
        return jsonify(error=exc.name, reason=exc.description), exc.code, headers

    if start_embedded_worker and settings.embedded_redis:
        from workers.embedded import start_embedded_worker as start

        start(runtime)
    return app
