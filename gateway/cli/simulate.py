"""``elimu simulate``: a terminal phone against a running service.

It speaks to the service exactly as Africa's Talking does (the USSD and inbound-SMS callbacks, with
the webhook token when ``ELIMU_WEBHOOK_TOKEN`` is set) and shows the SMS that reached the phone from
the simulator's inbox API (the ``outbox`` backend, development mode).
"""

from __future__ import annotations

import itertools
import os
import time
import uuid

import click
import requests

from registry.identifiers import InvalidMsisdn, normalize_msisdn

from ..config import ConfigError, ussd_code_setting

MENU = "\n[1] Dial {code}   [2] Text the short code   [3] Inbox   [q] Quit"


class Phone:
    """One simulated handset talking to ``base_url``."""

    def __init__(self, base_url: str, phone: str, ussd_code: str, token: str | None, timeout: float = 10.0) -> None:
        self.base = base_url.rstrip("/")
        self.phone = phone
        self.ussd_code = ussd_code
        self.params = {"token": token} if token else {}
        self.timeout = timeout
        self.http = requests.Session()
        self.seen: set[object] = set()
        self._ids = itertools.count(1)
        self.has_inbox = True  # the service's simulator inbox (development mode); without it, no SMS shown

    def hop(self, session_id: str, inputs: list[str]) -> str:
        form = {"sessionId": session_id, "serviceCode": self.ussd_code, "phoneNumber": self.phone,
                "networkCode": "63902", "text": "*".join(inputs)}
        response = self.http.post(f"{self.base}/ussd/africastalking", data=form, params=self.params,
                                  timeout=self.timeout)
        if response.status_code != 200:
            raise refused("USSD", response)
        return response.text

    def text(self, message: str) -> None:
        form = {"from": self.phone, "to": "22252", "text": message, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                "id": f"sim-{uuid.uuid4().hex}", "networkCode": "63902"}
        response = self.http.post(f"{self.base}/sms/africastalking/inbound", data=form, params=self.params,
                                  timeout=self.timeout)
        if response.status_code != 200:
            raise refused("SMS", response)

    def inbox(self) -> list[dict]:
        if not self.has_inbox:
            return []
        response = self.http.get(f"{self.base}/simulator/api/inbox", params={**self.params, "phone": self.phone},
                                 timeout=self.timeout)
        if response.status_code == 404:  # a production service: USSD and texting still work
            self.has_inbox = False
            click.secho("(this service has no simulator inbox, development mode only: the SMS it sends "
                        "are not shown here)", fg="yellow")
            return []
        if response.status_code != 200:
            raise refused("the simulator inbox", response)
        return response.json()["messages"]

    def new_messages(self, wait: float = 0.0) -> list[dict]:
        """Messages not shown yet, oldest first; waits up to ``wait`` seconds for the first one."""
        deadline = time.monotonic() + wait
        while self.has_inbox:
            fresh = [m for m in reversed(self.inbox()) if m["id"] not in self.seen]
            if fresh or time.monotonic() >= deadline:
                self.seen.update(m["id"] for m in fresh)
                return fresh
            time.sleep(0.3)
        return []


def refused(what: str, response: requests.Response) -> click.ClickException:
    """One line for a service that did not answer 200; a 403 says what the service checks."""
    if response.status_code == 403:
        return click.ClickException(
            f"{what} answered 403: the service checks callbacks: set ELIMU_WEBHOOK_TOKEN to its token "
            "(and run this from a network in its ELIMU_ALLOWED_NETWORKS)")
    return click.ClickException(f"{what} answered {response.status_code}: {response.text.strip()[:200]}")


def _show_sms(messages: list[dict]) -> None:
    for m in messages:
        click.secho(f"  [SMS] {m['text']}", fg="green")


def _ussd_session(phone: Phone) -> None:
    session_id = f"sim-{uuid.uuid4().hex[:16]}"
    inputs: list[str] = []
    while True:
        answer = phone.hop(session_id, inputs)
        kind, _, screen = answer.partition(" ")
        click.echo("+" + "-" * 34 + "+")
        click.echo(screen)
        click.echo("+" + "-" * 34 + "+")
        _show_sms(phone.new_messages(wait=1.5))
        if kind == "END":
            return
        reply = click.prompt("reply", default="", show_default=False)
        inputs.append(reply.strip())


@click.command("simulate")
@click.option("--phone", "raw_phone", default="0712000001", show_default=True, help="the handset's number")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, envvar="ELIMU_URL", show_envvar=True,
              help="the running service")
def simulate(raw_phone: str, url: str) -> None:
    """A terminal phone: dial the USSD code, text the short code, read the SMS that arrive.

    It dials ELIMU_USSD_CODE and sends ELIMU_WEBHOOK_TOKEN with every request when set, as the
    service reads them."""
    try:
        number = normalize_msisdn(raw_phone)
    except InvalidMsisdn as exc:
        raise click.BadParameter(str(exc), param_hint="--phone") from None
    try:
        code = ussd_code_setting(os.environ)  # as the service reads it: unset or empty is the default
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    phone = Phone(url, number, code, os.environ.get("ELIMU_WEBHOOK_TOKEN") or None)
    try:
        phone.seen.update(m["id"] for m in phone.inbox())
    except requests.RequestException as exc:
        raise click.ClickException(f"cannot reach {url} ({type(exc).__name__}); start it with `make run`") from None
    click.echo(f"Phone {number} on {url}")
    while True:
        click.echo(MENU.format(code=code))
        choice = click.prompt("choice", default="q", show_default=False).strip().lower()
        try:
            if choice == "1":
                _ussd_session(phone)
            elif choice == "2":
                message = click.prompt("message")
                phone.text(message)
                if phone.has_inbox:
                    _show_sms(phone.new_messages(wait=5.0) or [{"text": "(no reply yet: try [3] Inbox)"}])
            elif choice == "3":
                messages = list(reversed(phone.inbox()))
                _show_sms(messages or [{"text": "(inbox empty)" if phone.has_inbox else "(no simulator inbox)"}])
                phone.seen.update(m["id"] for m in messages)
            elif choice in ("q", "quit", "exit"):
                return
        except requests.RequestException as exc:
            click.secho(f"the service did not answer ({type(exc).__name__}); is it running?", fg="red")


commands = [simulate]
