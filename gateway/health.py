"""Liveness and readiness probes."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from registry.migrate import schema_state

from .runtime import Runtime

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    runtime: Runtime = current_app.extensions["elimu"]
    checks: dict[str, str] = {}
    for name, probe in (("database", runtime.db.ping), ("redis", runtime.redis.ping)):
        try:
            probe()
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            checks[name] = f"down: {type(exc).__name__}"
    if checks["database"] == "ok":  # answering, but with the tables this code needs?
        try:
            with runtime.db.autocommit() as connection:
                checks["schema"] = schema_state(connection)
        except Exception as exc:  # noqa: BLE001
            checks["schema"] = f"unknown: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ready" if ready else "not ready", checks=checks), (200 if ready else 503)
