"""The web phone at ``/simulator``: dial the USSD code, text the short code, read a phone's inbox.

On in development; off in production unless ``ELIMU_SIMULATOR=true``. The page calls a small JSON
API that runs the same adapter and hop handler as the provider callbacks, so what it shows is what
a handset would show. The inbox lists what the ``outbox`` SMS backend delivered to that number.

That API acts in any phone's name, as a callback does: outside development the simulator is served
only with ``ELIMU_WEBHOOK_TOKEN`` set, and every request to it is checked like a callback (the
token as ``?token=``, which the page passes on to its API, and ``ELIMU_ALLOWED_NETWORKS``; see
``gateway.security``). Without the token it stays off, and says so in the log at start.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import uuid
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState

from registry.identifiers import InvalidMsisdn, normalize_msisdn

from .runtime import Runtime

log = logging.getLogger(__name__)

bp = Blueprint("simulator", __name__)
BODY_SHAPE = 'the body must be a JSON object, like {"phone": "0712345678", "text": "1"}'


@bp.record_once
def _say_why_it_is_off(state: BlueprintSetupState) -> None:
    settings = state.app.extensions["elimu"].settings
    if settings.simulator_enabled and not settings.simulator_served:
        log.warning("ELIMU_SIMULATOR=true is ignored: outside development the simulator needs ELIMU_WEBHOOK_TOKEN "
                    "(its API acts in any phone's name, like a provider callback), so /simulator stays off")


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["elimu"]
    if not runtime.settings.simulator_served:
        abort(404)
    return runtime


def _json_object() -> dict[str, Any]:
    """The request's JSON body, which must be an object: anything else is a 400 saying so."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(400, description=BODY_SHAPE)
    return data


def _phone(raw: object) -> str:
    if raw is not None and not isinstance(raw, str):
        abort(400, description="phone: give the number as a string, like \"0712345678\"")
    try:
        return normalize_msisdn(raw or "")
    except InvalidMsisdn as exc:
        abort(400, description=f"phone: {exc}")


def _text(data: dict[str, Any], name: str) -> str:
    """A string field of the body (missing or null: empty); any other type is a 400."""
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        abort(400, description=f"{name}: must be a string")
    return value


@bp.get("/simulator")
def page() -> Response:
    runtime = _runtime()
    html = PAGE.replace("{{USSD_CODE}}", runtime.settings.ussd_code)
    return Response(html, mimetype="text/html", headers={"Content-Security-Policy": PAGE_POLICY})


@bp.post("/simulator/api/ussd")
def ussd() -> Response:
    """One hop: ``{phone, session, text}`` -> ``{body}`` exactly as AT would receive it."""
    from .ussd.routes import ADAPTERS, hop_handler

    runtime = _runtime()
    data = _json_object()
    phone = _phone(data.get("phone"))
    session = _text(data, "session")[:64] or f"sim-{uuid.uuid4().hex[:12]}"
    form = {"sessionId": session, "phoneNumber": phone, "serviceCode": runtime.settings.ussd_code,
            "networkCode": "63902", "text": _text(data, "text")[:500]}
    adapter = ADAPTERS["africastalking"]
    body, _ = adapter.render(hop_handler(runtime).handle(adapter.parse_hop(form)))
    return jsonify(session=session, body=body)


@bp.post("/simulator/api/sms")
def sms() -> Response:
    """Text the short code from ``phone``; the reply arrives in the inbox."""
    from workers.inbound import receive

    runtime = _runtime()
    data = _json_object()
    phone = _phone(data.get("phone"))
    text = _text(data, "text").strip()[:480]
    if not text:
        abort(400, description="text: type a message")
    receive(runtime, provider_id=f"sim-{uuid.uuid4().hex}", sender=phone, text=text,
            short_code=runtime.settings.at_short_code or "22252", link_id=None, network_code="63902",
            received_at=None)
    return jsonify(status="sent")


@bp.get("/simulator/api/inbox")
def inbox() -> Response:
    """The SMS the outbox backend delivered to ``phone``, newest first."""
    from workers.backends.outbox import read_inbox

    runtime = _runtime()
    phone = _phone(request.args.get("phone"))
    return jsonify(phone=phone, messages=read_inbox(runtime.redis, phone))


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Elimu Gateway - phone simulator</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;background:#eef1f4;margin:0;padding:24px;color:#1d2733}
h1{font-size:20px;margin:0 0 16px}
.wrap{display:flex;gap:24px;flex-wrap:wrap}
.phone{width:300px;background:#222;border-radius:28px;padding:22px 16px;box-shadow:0 6px 24px #0003}
.screen{background:#c9d8b6;font-family:monospace;font-size:14px;min-height:210px;white-space:pre-wrap;
 padding:10px;border-radius:6px;word-wrap:break-word}
.row{display:flex;gap:6px;margin-top:10px}
input,button{font-size:15px;padding:8px;border-radius:6px;border:1px solid #889}
input{flex:1;min-width:0}
button{background:#2b6cb0;color:#fff;border:0;cursor:pointer}
button.alt{background:#718096}
.panel{background:#fff;border-radius:12px;padding:16px;width:340px;box-shadow:0 2px 10px #0001}
.sms{border-bottom:1px solid #e2e8f0;padding:8px 0;font-size:14px}
.sms small{color:#718096;display:block}
label{font-size:13px;color:#4a5568}
</style></head>
<body>
<h1>Elimu Gateway &mdash; phone simulator</h1>
<div class="wrap">
 <div class="phone">
  <label style="color:#ccc">Phone number</label>
  <div class="row" style="margin-top:4px"><input id="phone" value="0712000001" aria-label="phone number"></div>
  <div class="row"><button id="dial">Dial {{USSD_CODE}}</button><button id="hangup" class="alt">Hang up</button></div>
  <div id="screen" class="screen" aria-live="polite">Press Dial to start a USSD session.</div>
  <div class="row"><input id="answer" placeholder="Your answer" aria-label="answer"><button id="send">Send</button></div>
 </div>
 <div class="panel">
  <h2 style="font-size:16px;margin-top:0">Text the short code</h2>
  <div class="row"><input id="smstext" placeholder="e.g. KCSE 19301012001 Mwangi" aria-label="sms text">
   <button id="smssend">Send</button></div>
  <h2 style="font-size:16px">Inbox</h2>
  <div id="inbox"><em>No messages yet.</em></div>
 </div>
</div>
<script>
let session = null, inputs = [];
const $ = id => document.getElementById(id);
const token = new URLSearchParams(location.search).get("token");  // the API needs it outside development
const withToken = url => token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url;
async function post(url, data) {
  const r = await fetch(withToken(url), {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(data)});
  const j = await r.json();
  if (!r.ok) throw new Error(j.reason || r.statusText);
  return j;
}
async function hop() {
  try {
    const j = await post("simulator/api/ussd", {phone: $("phone").value, session, text: inputs.join("*")});
    session = j.session;
    const ended = j.body.startsWith("END ");
    $("screen").textContent = j.body.slice(4);
    if (ended) { session = null; inputs = []; $("screen").textContent += "\\n\\n[session ended]"; }
  } catch (e) { $("screen").textContent = "Error: " + e.message; session = null; inputs = []; }
  refreshInbox();
}
$("dial").onclick = () => { session = null; inputs = []; hop(); };
$("hangup").onclick = () => { session = null; inputs = []; $("screen").textContent = "Call ended."; };
$("send").onclick = () => { if (!session) return; inputs.push($("answer").value); $("answer").value = ""; hop(); };
$("answer").addEventListener("keydown", e => { if (e.key === "Enter") $("send").click(); });
$("smssend").onclick = async () => {
  try { await post("simulator/api/sms", {phone: $("phone").value, text: $("smstext").value}); $("smstext").value = ""; }
  catch (e) { alert(e.message); }
  setTimeout(refreshInbox, 500);
};
async function refreshInbox() {
  try {
    const r = await fetch(withToken("simulator/api/inbox?phone=" + encodeURIComponent($("phone").value)));
    if (!r.ok) return;
    const j = await r.json();
    const box = $("inbox");
    if (!j.messages.length) { box.innerHTML = "<em>No messages yet.</em>"; return; }
    box.innerHTML = "";
    for (const m of j.messages) {
      const d = document.createElement("div"); d.className = "sms";
      const s = document.createElement("small"); s.textContent = m.at + " - " + m.kind;
      d.appendChild(s); d.appendChild(document.createTextNode(m.text)); box.appendChild(d);
    }
  } catch (e) { /* the inbox is best effort */ }
}
setInterval(refreshInbox, 2000);
</script>
</body></html>
"""


def _page_policy(page: str) -> str:
    """The page's Content-Security-Policy: its own inline script (by hash) and styles, requests to
    its own API, nothing else; never framed."""
    script = page.split("<script>", 1)[1].split("</script>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    return (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; connect-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


PAGE_POLICY = _page_policy(PAGE)
