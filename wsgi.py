"""WSGI entry point: ``gunicorn wsgi:app``."""

from gateway.app import create_app

app = create_app(start_embedded_worker=True)
