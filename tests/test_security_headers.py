"""Response headers of what Flask serves: the simulator's page and API, health and metrics.
Found by the security review: none of them set any."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest


def test_the_simulator_page_runs_only_its_own_script_and_is_never_framed(client):
    """The page acts as any phone through its API (and outside development carries the token in
    its address): another site could frame it and click it, or read the token from a referrer."""
    response = client.get("/simulator")
    policy = response.headers["Content-Security-Policy"]
    script = re.search(r"<script>(.*)</script>", response.get_data(as_text=True), re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy and "'unsafe-inline'" not in policy.split("style-src")[0]
    assert "frame-ancestors 'none'" in policy and "connect-src 'self'" in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/simulator/api/inbox?phone=0712345678",
                                  "/no-such-page"])
def test_every_flask_answer_is_locked_down(client, path):
    response = client.get(path)
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"  # the inbox holds one-time codes
