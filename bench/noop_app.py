"""The B1 baseline: a Flask endpoint that does nothing, served by the same gunicorn configuration."""

from flask import Flask, Response

app = Flask(__name__)


@app.post("/ussd/africastalking")
def noop() -> Response:
    return Response("END ok", mimetype="text/plain")


@app.get("/healthz")
def healthz() -> Response:
    return Response("ok", mimetype="text/plain")
