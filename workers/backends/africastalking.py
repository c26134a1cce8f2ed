"""The Africa's Talking backend: the only module that imports the AT SDK (``africastalking`` 2.0.3).

SDK facts this relies on (shared AT-PROTOCOL.md §3-§4):
- ``SMSService`` is built once per process and credentials; ``AT_API_BASE_URL`` replaces its private
  ``_baseUrl`` and ``_contentUrl`` (there is no public option).
- A 2xx answer is parsed JSON only when the content type is exactly ``application/json``; otherwise
  the SDK hands back the text, which is parsed here. A non-2xx raises ``AfricasTalkingException``
  with the body. Here POSTs go on ``http.client`` (see ``KeepAliveSMSService``): its timeouts and connection
  errors, or ``requests``' through a proxy, come through unwrapped and are classified below.
- Per-recipient ``statusCode``: 100/101/102 accepted; 401-409 and 502 RejectedByGateway refused
  for good, but 402 InvalidSenderId and 405 InsufficientBalance (the account's, retried); 500/501
  worth retrying (AT suggests retrying 500/501 only), and so is an undocumented code above 502.
  A request-level failure (5xx, timeout, connection error, refused request) is retried, but for one case: when the request went out whole and its answer was lost (``AnswerLost``: a
  read timeout, the connection dropped while waiting; see ``_post``), AT may have taken it. A premium reply is
  charged to the subscriber, so it is then counted as taken (``UNCONFIRMED``) and never sent
  again: a parent is not billed twice (Kenya's 2017 results service refunded 424,011 requests
  delayed or double-billed). Other messages are retried: a second copy costs the sender a little,
  a lost code more.

A bulk notice with one text goes as one request per batch of recipients (``enqueue=1``); a reply to
a premium message carrying a ``linkId`` goes through ``send_premium`` from the short code.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import logging
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlencode, urlsplit

import africastalking
import requests
from africastalking.Service import AfricasTalkingException
from urllib3.util.wait import wait_for_read

from registry.models import PRIORITY_BY_KIND, MessageKind, Priority

from . import Outcome, Outgoing, SendInterrupted, SendResult

if TYPE_CHECKING:
    from gateway.config import Settings

    from ..throttle import Throttle

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = (3.05, 10.0)  # (connect, read) seconds for every call
BATCH_SIZE = 100  # recipients per bulk request (AT publishes no maximum; stay conservative)
CONCURRENCY = 8  # requests in flight at once from one worker process (ELIMU_SMS_CONCURRENCY)
MAX_CONCURRENCY = 64  # the most sending threads (each keeps its own connection to AT)
# A kept connection idle this long is replaced: NATs and load balancers forget idle connections
# (after 60-350 s), and a request on a forgotten one is reset, unanswered.
KEEP_IDLE_S = 30.0
ACCEPTED = {100: "Processed", 101: "Sent", 102: "Queued"}
RETRYABLE = {500: "InternalServerError", 501: "GatewayError"}
REFUSED = {
    401: "RiskHold", 402: "InvalidSenderId", 403: "InvalidPhoneNumber", 404: "UnsupportedNumberType",
    405: "InsufficientBalance", 406: "UserInBlacklist", 407: "CouldNotRoute", 409: "DoNotDisturbRejection",
    502: "RejectedByGateway",  # a server-side code, but a rejection: AT suggests retrying 500/501 only
}
# Refusals that are no verdict on the message but on the account: a sender id AT has not approved
# for it, a balance run out. Retried, as a wrong API key is: what the operator fixes (AT_SENDER_ID,
# a top-up) within the retry window still goes out, instead of every message of the outage failing.
ACCOUNT_REFUSALS = frozenset({402, 405})
# Kinds the throttle lets go at once (one-time codes and the UPI after one): a person is waiting.
URGENT_KINDS = frozenset(kind.value for kind in MessageKind if PRIORITY_BY_KIND[kind] is Priority.OTP)


def _urgent(batch: Sequence[Outgoing]) -> bool:
    return all(message.kind in URGENT_KINDS for message in batch)


_PHONE = re.compile(r"^\+\d{1,3}\d{3,}$")  # the SDK's own check; a failing number would raise

_services: dict[tuple[str, str, str | None], Any] = {}
_services_lock = threading.Lock()
_executors: dict[int, ThreadPoolExecutor] = {}
FORM = "application/x-www-form-urlencoded"


class AnswerLost(Exception):
    """The request was sent whole, then its answer never came: a read timeout, or the connection
    failed while waiting. AT may have taken it. The error is the ``__cause__``."""


class KeepAliveSMSService(africastalking.SMSService):
    """The SDK's SMS service, its POSTs sent over kept-alive connections. Everything else is the
    SDK's: the fields it builds, its checks, and ``_make_request``'s answer (parsed JSON only for
    exactly ``application/json``, the text otherwise, ``AfricasTalkingException`` for a non-2xx).

    The SDK calls ``requests.post``, which opens and closes a TCP (on AT, TLS) connection per
    request. Here a POST goes on a connection the sending thread keeps (``_post``): the standard
    library's ``http.client``, which ``urllib3`` and so ``requests`` themselves send through.
    ``requests``' own per-request work cost half of a send's CPU (1.25-1.54 ms a request against
    0.63-0.69 ms), and ``urllib3``'s pool, retry, timeout and response wrappers half of what was
    left (260 against 126 us of CPU a request to the bench's fake AT; ``bench/README.md``). As
    ``requests`` does, it verifies TLS against certifi's bundle or ``REQUESTS_CA_BUNDLE`` /
    ``CURL_CA_BUNDLE``, sends form-encoded fields, and never resends a request (a resent POST
    could be a second SMS). Where the environment names a proxy for AT's host (``HTTPS_PROXY``,
    ``NO_PROXY``..., read once per host), the request goes through a ``requests`` session
    instead, which knows every proxy form (authentication, SOCKS)."""

    _local = threading.local()

    def _make_request(self, url, method, headers, data, params, callback=None, timeout=DEFAULT_TIMEOUT):
        if callback is not None or method.upper() != "POST" or params:
            return super()._make_request(url, method, headers, data, params, callback=callback, timeout=timeout)
        proxies = _proxies(urlsplit(url)[:2])
        if requests.utils.select_proxy(url, proxies):
            status, content_type, text = self._post_through_proxy(url, headers, data, timeout, proxies)
        else:
            status, content_type, text = _post(url, headers, data, timeout)
        if not 200 <= status < 300:
            raise AfricasTalkingException(text)
        if content_type == "application/json":
            with contextlib.suppress(ValueError):  # broken JSON: the text, which ``classify`` reads as such
                return json.loads(text)
        return text

    def _post_through_proxy(self, url, headers, data, timeout, proxies) -> tuple[int, str | None, str]:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = _session()
        # ``requests`` does not say whether a failure came before the request went out (a proxy's
        # CONNECT or the TLS handshake in its tunnel time out as a ReadTimeout too), so none is
        # taken for an answer lost: every one is retried
        res = session.post(url=url, headers=headers, data=data, timeout=timeout, proxies=proxies)
        return res.status_code, res.headers.get("content-type"), res.text


class _Origin(NamedTuple):
    """Where a URL's requests go; each sending thread keeps one connection to each."""

    https: bool
    host: str
    port: int


@functools.lru_cache(maxsize=16)
def _split(url: str) -> tuple[_Origin, str]:
    """``url``'s origin and its path with the query."""
    parts = urlsplit(url)
    https = parts.scheme == "https"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Origin(https, parts.hostname or "", parts.port or (443 if https else 80)), path


# each sending thread's connections (``connections``: _Origin -> connection), and ``sent``: whether
# its last request went out whole (``send`` clears it before a request made in the calling thread)
_kept = threading.local()


def _post(url: str, headers: Mapping[str, str], data: Mapping[str, Any], timeout) -> tuple[int, str | None, str]:
    """POST ``data`` form-encoded on this thread's kept connection to ``url``'s origin; status,
    content type, text. Any failure closes the connection (its state is unknown) and is raised
    as the standard library raises it: ``TimeoutError``, another ``OSError`` (refused, reset,
    TLS), or ``http.client.HTTPException`` (the server closed it, a garbled answer).

    Raised as ``AnswerLost`` when the request went out whole and AT may have taken it: a timeout
    waiting for the answer (AT is there, and slow), the answer cut off once it began, or a fresh
    connection reset or closed before any answer. A *kept* connection reset or closed before any
    answer is a plain error: it died while idle (AT or a NAT on the way forgot it, or closed it
    as our request went out), so AT never read the request. Kept connections idle for
    ``KEEP_IDLE_S`` are not used again, which keeps that case rare."""
    connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    origin, path = _split(url)
    connection, kept = _connection(origin, connect, read)
    try:
        connection.request("POST", path, body=urlencode(data), headers={**headers, "Content-Type": FORM})
        _kept.sent = True
        try:
            response = connection.getresponse()
        except TimeoutError as exc:
            raise AnswerLost("timeout") from exc
        except (OSError, http.client.HTTPException) as exc:
            if kept and isinstance(exc, ConnectionError):  # reset or closed (``RemoteDisconnected``) unanswered
                raise
            raise AnswerLost(type(exc).__name__) from exc
        try:
            text = response.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as exc:  # AT began to answer: it had the request
            raise AnswerLost(type(exc).__name__) from exc
    except BaseException:
        _close(origin)
        raise
    if response.will_close:  # ``Connection: close``: the next request connects afresh
        _close(origin)
    else:
        connection.elimu_used = time.monotonic()  # type: ignore[attr-defined]
    return response.status, response.getheader("content-type"), text


def _connection(origin: _Origin, connect: float, read: float) -> tuple[http.client.HTTPConnection, bool]:
    """This thread's open connection to ``origin`` and whether it was kept from an earlier request;
    connected first if it has none, the one it kept was idle for ``KEEP_IDLE_S`` or more, or the
    server closed it meanwhile (readable while idle: its end of file, as ``urllib3`` checks a
    pooled connection before reusing it)."""
    connections: dict[_Origin, http.client.HTTPConnection] = _kept.__dict__.setdefault("connections", {})
    connection = connections.get(origin)
    if (connection is not None and connection.sock is not None
            and time.monotonic() - getattr(connection, "elimu_used", 0.0) < KEEP_IDLE_S
            and not wait_for_read(connection.sock, timeout=0.0)):
        if connection.sock.gettimeout() != read:
            connection.sock.settimeout(read)
        return connection, True
    _close(origin)
    if origin.https:
        connection = http.client.HTTPSConnection(origin.host, origin.port, timeout=connect, context=_tls_context())
    else:
        connection = http.client.HTTPConnection(origin.host, origin.port, timeout=connect)
    connections[origin] = connection
    try:
        connection.connect()
        # http.client sends a request's head and body in two writes: without this, Nagle's algorithm
        # can hold the body until the head's (delayed) ACK; urllib3 sets it too
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        _close(origin)
        raise
    connection.sock.settimeout(read)
    return connection, False


def _close(origin: _Origin) -> None:
    connection = _kept.__dict__.get("connections", {}).pop(origin, None)
    if connection is not None:
        connection.close()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """Certificates and host names verified against the bundle ``requests`` would use: the
    environment's (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) or certifi's."""
    return ssl.create_default_context(cafile=_ca_bundle() or requests.certs.where())


def _session() -> requests.Session:
    """A session that does not consult the environment per request; the CA bundle ``requests``
    would take from it (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) is taken here, once."""
    session = requests.Session()
    session.trust_env = False
    bundle = _ca_bundle()
    if bundle:
        session.verify = bundle
    return session


def _ca_bundle() -> str | None:
    """The CA bundle the environment names for ``requests`` (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``)."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")


@functools.lru_cache(maxsize=16)
def _proxies(scheme_host: tuple[str, str]) -> dict[str, str]:
    """The proxies the environment gives for a host (``HTTPS_PROXY``, ``NO_PROXY``...), as
    ``requests`` would find them per request."""
    return requests.utils.get_environ_proxies(f"{scheme_host[0]}://{scheme_host[1]}/")


_warned: set[str] = set()


def setup_warnings(short_code: str | None, content_url: str) -> list[str]:
    """What an operator should know about premium (on-demand) replies before the first is sent."""
    if not short_code:
        return ["AT_SHORT_CODE is unset: replies to messages that came with a linkId (a premium short "
                "code) go out as plain bulk SMS, without it; set AT_SHORT_CODE to the short code inbound "
                "SMS arrive on"]
    if requests.utils.select_proxy(content_url, _proxies(urlsplit(content_url)[:2])):
        return ["a proxy is set for AT's content API: a premium reply whose answer is lost there is retried, "
                "since through a proxy it cannot be told whether AT took it, and the subscriber may be "
                "charged twice (docs/sms.md); reach AT directly for premium replies if you can"]
    return []


def sms_service(username: str, api_key: str, base_url: str | None = None) -> Any:
    """The SDK's SMS service for these credentials, built once per process."""
    key = (username, api_key, base_url)
    with _services_lock:
        service = _services.get(key)
        if service is None:
            service = KeepAliveSMSService(username, api_key)
            if base_url:
                service._baseUrl = base_url.rstrip("/")
                service._contentUrl = base_url.rstrip("/")
            _services[key] = service
        return service


def _executor(threads: int) -> ThreadPoolExecutor:
    """The process's sending threads, ``threads`` of them (made on first use)."""
    with _services_lock:
        pool = _executors.get(threads)
        if pool is None:
            pool = _executors[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="elimu-at")
        return pool


class AfricasTalkingBackend:
    name = "africastalking"
    throttled = True

    def __init__(
        self,
        service: Any,
        throttle: Throttle | None = None,
        sender_id: str | None = None,
        short_code: str | None = None,
        timeout: tuple[float, float] | None = None,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self.service = service
        self.throttle = throttle
        self.sender_id = sender_id
        self.short_code = short_code
        self.timeout = timeout or DEFAULT_TIMEOUT
        self.concurrency = max(1, min(concurrency, MAX_CONCURRENCY))

    @classmethod
    def from_settings(cls, settings: Settings, throttle: Throttle | None = None) -> AfricasTalkingBackend:
        if not (settings.at_username and settings.at_api_key):
            raise ValueError("SMS_BACKEND=africastalking needs AT_USERNAME and AT_API_KEY")
        service = sms_service(settings.at_username, settings.at_api_key, settings.at_api_base_url)
        for warning in setup_warnings(settings.at_short_code, service._contentUrl):
            if warning not in _warned:
                _warned.add(warning)
                log.warning(warning)
        return cls(service, throttle, settings.at_sender_id, settings.at_short_code,
                   concurrency=settings.sms_concurrency)

    def send(self, messages: Sequence[Outgoing]) -> list[SendResult]:
        """Messages with the same text share requests (up to BATCH_SIZE recipients each); the
        requests of one call are booked with the shared throttle in one go and run concurrently,
        each waiting for its turn. A lone request runs in the calling thread: interrupted there once
        it went out (the job's time ran out), it raises ``SendInterrupted`` with its answer lost."""
        results: list[SendResult] = []
        calls: list[tuple[str, list[Outgoing], bool]] = []  # (premium | plain, messages, bulk)
        groups: dict[tuple[str, bool], list[Outgoing]] = {}
        for message in messages:
            if not _PHONE.match(message.recipient):
                results.append(SendResult(message.message_id, Outcome.FAILED, reason="invalid phone number"))
            elif message.link_id and self.short_code:
                calls.append(("premium", [message], False))
            else:
                groups.setdefault((message.body, message.bulk), []).append(message)
        for (_body, bulk), group in groups.items():
            calls.extend(("plain", group[i:i + BATCH_SIZE], bulk) for i in range(0, len(group), BATCH_SIZE))
        calls.sort(key=lambda call: not _urgent(call[1]))  # codes first: they wait for nobody
        if len(calls) == 1:
            _kept.sent = False
            try:
                results.extend(self._request(*calls[0]))
            except BaseException as exc:  # the job's time ran out (RQ raises in this thread), a signal
                if not getattr(_kept, "sent", False):
                    raise  # nothing went out: the caller puts the rows back
                # the request went out whole and its answer is lost with the job, as after a read timeout
                kind, batch, _ = calls[0]
                raise SendInterrupted(results + _answer_lost(kind, batch, exc, interrupted=True)) from exc
        elif calls:
            # one throttle booking for all the requests, each then waiting out its own share
            waits = (self.throttle.schedule([len(batch) for _, batch, _ in calls],
                                            [_urgent(batch) for _, batch, _ in calls])
                     if self.throttle is not None else [0.0] * len(calls))
            booked = time.monotonic()
            answers: list[list[SendResult]] = [[] for _ in calls]
            turns = SimpleQueue()  # the calls in booking order, taken by whichever thread is free
            for index in range(len(calls)):
                turns.put(index)

            stop = threading.Event()  # the calling thread was interrupted: start no more requests

            def take_turns() -> None:
                while not stop.is_set():
                    try:
                        index = turns.get_nowait()
                    except Empty:
                        return
                    delay = booked + waits[index] - time.monotonic()
                    if delay > 0 and self.throttle is not None:
                        self.throttle.sleep(delay)
                    if stop.is_set() or time.monotonic() - booked > TURN_DEADLINE_S:
                        # too late for the lease its rows were claimed under: a job of their own sends them
                        answers[index] = _all(calls[index][1], Outcome.RETRY, "not sent: its turn came too late")
                        continue
                    answers[index] = self._request(*calls[index], throttled=False)

            # ``concurrency`` threads take the calls in turn: a task per thread, not per request
            # (a future per request cost a fifth of the send's CPU in a drain's batch of 200 replies)
            pool = _executor(self.concurrency)
            runs = [pool.submit(take_turns) for _ in range(min(self.concurrency, len(calls)))]
            try:
                futures_wait(runs)  # every request ends before any error is raised
            except BaseException as exc:  # the job's time ran out (RQ raises in this thread), a signal
                stop.set()
                futures_wait(runs)  # the requests already sent end (their timeout bounds the wait)
                sent = [answer or _all(calls[index][1], Outcome.RETRY, "not sent: the send was interrupted")
                        for index, answer in enumerate(answers)]
                raise SendInterrupted(results + [r for answer in sent for r in answer]) from exc
            for run in runs:
                run.result()
            for answer in answers:
                results.extend(answer)
        return results

    def _request(self, kind: str, batch: list[Outgoing], bulk: bool, throttled: bool = True) -> list[SendResult]:
        """One HTTP request to AT for ``batch`` (all with the same text), classified per message
        (``throttled``: book it with the throttle first; False when the caller booked it)."""
        if throttled and self.throttle is not None:
            self.throttle.acquire(len(batch), _urgent(batch))
        recipients = [m.recipient for m in batch]
        try:
            if kind == "premium":
                answer = self.service.send_premium(batch[0].body, self.short_code, recipients,
                                                   link_id=batch[0].link_id, timeout=self.timeout)
            else:
                answer = self.service.send(batch[0].body, recipients, sender_id=self.sender_id,
                                           enqueue=bulk, timeout=self.timeout)
        except AnswerLost as exc:
            return _answer_lost(kind, batch, exc.__cause__)
        except (TimeoutError, requests.exceptions.Timeout):  # connecting or sending: AT has not got it
            log.warning("AT request timed out (%d message(s)); will retry", len(batch))
            return _all(batch, Outcome.RETRY, "timeout")
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, TLS; ``requests``' are OSErrors too
            log.warning("AT request failed: %s (%d message(s)); will retry", type(exc).__name__, len(batch))
            return _all(batch, Outcome.RETRY, f"connection error: {type(exc).__name__}")
        except AfricasTalkingException as exc:
            detail = " ".join(str(exc).split())[:120]
            log.error("AT refused the request (check AT_USERNAME/AT_API_KEY/AT_SENDER_ID): %s", detail)
            return _all(batch, Outcome.RETRY, f"provider refused the request: {detail}")
        except ValueError as exc:
            if str(exc).startswith("Invalid phone number"):  # the SDK's own check of the recipients
                return _all(batch, Outcome.FAILED, "invalid phone number")
            # anything else (a header value http.client refuses, such as an API key with a newline)
            # is no verdict on the message: retried, and said in the log
            log.error("AT request not made: %s (check AT_API_KEY and AT_USERNAME)", type(exc).__name__)
            return _all(batch, Outcome.RETRY, f"request not made: {type(exc).__name__}")
        return classify(batch, answer)


# A call whose turn comes later than this after the booking is not made: its rows were claimed
# under ``registry.outbox.LEASE`` (5 minutes), after which the reconciler sends them again.
TURN_DEADLINE_S = 120.0


def _answer_lost(kind: str, batch: list[Outgoing], cause: BaseException | None,
                 interrupted: bool = False) -> list[SendResult]:
    """The request went out and its answer was lost: AT may have taken it. A premium reply (the
    subscriber pays) is counted as taken, never resent; anything else is retried."""
    timeout = isinstance(cause, (TimeoutError, requests.exceptions.Timeout))
    what = ("timeout" if timeout else f"interrupted: {type(cause).__name__}" if interrupted
            else f"connection error: {type(cause).__name__}")
    if kind == "premium":
        log.warning("AT answer lost (%s) for a premium reply; not resent (the subscriber would pay twice)", what)
        return _all(batch, Outcome.UNCONFIRMED, f"answer lost ({what}); not resent, the subscriber pays for it")
    log.warning("AT answer lost (%s, %d message(s)); will retry", what, len(batch))
    return _all(batch, Outcome.RETRY, what)


# What ``error_label`` calls a send that AT did not take, from the reasons this module writes
# (first match wins); an AT status code is named as AT names it.
_ERRORS = (("invalid phone number", "InvalidPhoneNumber"), ("timeout", "timeout"), ("answer lost", "answer_lost"),
           ("connection error", "connection"), ("provider refused the request", "request_refused"),
           ("not in provider answer", "not_in_answer"), ("interrupted", "answer_lost"), ("not sent", "not_sent"),
           ("request not made", "not_sent"))
ERROR_LABELS = frozenset({*REFUSED.values(), *RETRYABLE.values(), *(label for _, label in _ERRORS), "other"})


def error_label(result: SendResult) -> str:
    """A bounded name for why a send was not taken (``elimu_sms_send_errors_total{error}``): AT's
    status for its per-recipient codes (``InsufficientBalance``, ``InvalidSenderId``, ...), else
    the transport's failure (``timeout``, ``connection``, ``request_refused``: a non-2xx answer)."""
    if result.status_code is not None:
        return REFUSED.get(result.status_code) or RETRYABLE.get(result.status_code) or "other"
    reason = result.reason or ""
    return next((label for prefix, label in _ERRORS if reason.startswith(prefix)), "other")


def _all(batch: Sequence[Outgoing], outcome: Outcome, reason: str) -> list[SendResult]:
    return [SendResult(m.message_id, outcome, reason=reason) for m in batch]


def classify(batch: Sequence[Outgoing], answer: object) -> list[SendResult]:
    """Per-message results from AT's 2xx answer (a dict, or the text the SDK returns when the
    content type was not exactly ``application/json``)."""
    data = _message_data(answer)
    if data is None:
        return _all(batch, Outcome.ACCEPTED, "provider accepted; its answer was unreadable")
    recipients = data.get("Recipients") or []
    if not isinstance(recipients, list):  # a 2xx AT answered: it took the request, the rest is unreadable
        return _all(batch, Outcome.ACCEPTED, "provider accepted; its answer was unreadable")
    by_number: dict[str, list[dict[str, Any]]] = {}
    for recipient in recipients:
        if isinstance(recipient, dict):
            by_number.setdefault(str(recipient.get("number", "")), []).append(recipient)
    summary = " ".join(str(data.get("Message") or "").split())[:80]
    results = []
    for message in batch:
        entries = by_number.get(message.recipient)
        if not entries:
            results.append(SendResult(message.message_id, Outcome.RETRY,
                                      reason=f"not in provider answer: {summary or 'no recipients'}"))
            continue
        results.append(_recipient_result(message, entries.pop(0)))
    refused = next((r for r in results if r.status_code in ACCOUNT_REFUSALS), None)
    if refused is not None:
        log.error("AT refused a message for the account (%s); will retry (check AT_SENDER_ID and the AT balance)",
                  (refused.reason or "")[3:])
    return results


def _message_data(answer: object) -> dict[str, Any] | None:
    if isinstance(answer, (str, bytes)):
        try:
            answer = json.loads(answer)
        except ValueError:
            return None
    if not isinstance(answer, dict):
        return None
    data = answer.get("SMSMessageData")
    return data if isinstance(data, dict) else None


def _recipient_result(message: Outgoing, entry: dict[str, Any]) -> SendResult:
    try:
        code = int(entry.get("statusCode"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        code = None
    status = str(entry.get("status") or "")[:40]
    cost = str(entry.get("cost") or "")[:32] or None
    message_id = str(entry.get("messageId") or "")
    # a code AT documents as taken; without a code, a status that says so (``Success``, or a code's name)
    if code in ACCEPTED or (code is None and status in ("Success", *ACCEPTED.values())):
        return SendResult(message.message_id, Outcome.ACCEPTED, None if message_id in ("", "None") else message_id,
                          code, cost)
    name = REFUSED.get(code or 0) or RETRYABLE.get(code or 0) or status or "unknown"
    reason = f"AT {code} {name}"
    if code in RETRYABLE or code in ACCOUNT_REFUSALS or (code is not None and code > 502):
        return SendResult(message.message_id, Outcome.RETRY, status_code=code, reason=reason)
    return SendResult(message.message_id, Outcome.FAILED, status_code=code, cost=cost, reason=reason)
