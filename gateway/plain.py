"""Plain-text answers: the form every callback (USSD hop, SMS, degraded answer) is answered in."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Response

TEXT = "text/plain; charset=utf-8"


def plain(body: str, status: int = 200, content_type: str = TEXT, headers: Mapping[str, str] | None = None) -> Response:
    return Response(body, status=status, content_type=content_type, headers=dict(headers or {}))
