"""The menu engine: screens, a screen stack, and one step per USSD hop.

A conversation is plain JSON-serialisable data (``State``), so a gateway can keep it in Redis:

    {"lang": "en", "screen": "main", "stack": [], "data": {}, "invalid": 0, "note": null}

Each hop calls :meth:`Engine.step` with the state and the new input; it returns the reply and the
next state. ``0`` goes back and ``00`` home on every screen after the main menu; three invalid
answers on one screen end the session.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson

from . import layout
from .services import Services
from .texts import DEFAULT_LANGUAGE, LANGUAGES, text

State = dict[str, Any]  # see the module docstring; ``data`` keys starting with "_" survive ``00``
BACK = "0"
HOME = "00"
MORE = "98"
MAX_INVALID = 3
MAX_STACK = 16
MAX_CHAIN = 8  # screens an outcome may pass through in one hop (entry hooks redirecting)


@dataclass(frozen=True)
class Reply:
    """What to show: ``text`` without the ``CON``/``END`` prefix; ``end`` closes the session;
    ``gave_up``: it closes after too many invalid answers (the caller may resume the screen)."""

    text: str
    end: bool
    gave_up: bool = False


# --- outcomes a screen returns --------------------------------------------------------------------


@dataclass(frozen=True)
class Go:
    """Move to ``screen``; ``push`` keeps the current one for ``0`` (back)."""

    screen: str
    push: bool = True
    note: str | None = None


@dataclass(frozen=True)
class Back:
    """Return to the previous screen, optionally with a one-time note above it."""

    note: str | None = None


@dataclass(frozen=True)
class Home:
    note: str | None = None


@dataclass(frozen=True)
class Retry:
    """Invalid input: show the screen again with ``hint``; counts towards the three invalid answers."""

    hint: str


@dataclass(frozen=True)
class Stay:
    """Show the screen again (e.g. next page, or a wrong PIN that has its own limit) without counting."""

    note: str | None = None


@dataclass(frozen=True)
class Stop:
    """End the session with ``text``."""

    text: str


@dataclass(frozen=True)
class Restore:
    """Replace the whole conversation with a saved one (resume)."""

    state: State


Outcome = Go | Back | Home | Retry | Stay | Stop | Restore


@dataclass
class Context:
    """What a screen may use during one hop. ``data`` is the conversation's mutable data; ``today``
    is the date in Kenya (no date of birth is after it)."""

    phone: str
    session_id: str
    services: Services
    ussd_code: str
    lang: str = DEFAULT_LANGUAGE
    data: dict[str, Any] = field(default_factory=dict)
    today: date = field(default_factory=date.today)

    def t(self, key: str, **values: object) -> str:
        """The text ``key`` in the conversation's language; ``{code}`` is the USSD code."""
        if values:
            return text(self.lang, key, **{"code": self.ussd_code, **values})
        found = _FORMATTED.get((self.lang, key, self.ussd_code))
        if found is None:
            found = text(self.lang, key, code=self.ussd_code)
            if len(_FORMATTED) < MAX_FORMATTED:
                _FORMATTED[(self.lang, key, self.ussd_code)] = found
        return found


# Texts asked for with no values (most of a screen's), as formatted: (language, key, USSD code) -> text
_FORMATTED: dict[tuple[str, str, str], str] = {}
MAX_FORMATTED = 4096  # every key in both languages for a few codes; a process serves one
MAX_FIXED = 1024  # fixed screens' bodies kept by an engine (a language read from a record is not checked)


@dataclass(frozen=True)
class View:
    """A rendered screen before navigation lines: text lines, then numbered options."""

    lines: tuple[str, ...] = ()
    options: tuple[tuple[str, str], ...] = ()


class Screen:
    """A unit of conversation. Subclasses set ``name`` and implement ``render`` and ``handle``.

    ``enter`` may redirect before the screen is shown (e.g. nothing to choose from); ``back`` may
    take ``0`` within the screen (a list's previous page); ``resumable`` screens are offered again
    when a session drops while on them. A ``fixed`` screen renders texts of the catalogues only
    (``ctx.t`` without values: nothing of the caller, the data or the services), so the engine
    composes it once per language, USSD code and place (a strict engine checks every render).
    """

    name: str = ""
    resumable: bool = False
    fixed: bool = False

    def enter(self, ctx: Context) -> Outcome | None:
        return None

    def back(self, ctx: Context) -> Outcome | None:
        """What ``0`` does within this screen, or None to go back to the previous screen."""
        return None

    def render(self, ctx: Context) -> View:
        raise NotImplementedError

    def handle(self, ctx: Context, value: str) -> Outcome:
        raise NotImplementedError


# What json.dumps takes, orjson takes with these options (int keys become strings, str and int
# subclasses their values); dates and dataclasses, which json refuses, raise TypeError here too.
# (orjson writes enums and UUIDs as their values; tests/menus/test_menu_walk.py holds every state
# of every screen to the stdlib's json.)
PLAIN_JSON = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS


def _copy(state: State) -> State:
    """The state a step may change, leaving ``state`` as it was: its own dict, stack and data.

    The data's values are shared: screens replace them (``ctx.data[key] = ...``), never change one
    in place (``tests/menus/test_menu_walk.py`` holds every screen to it, and every state to JSON;
    the gateway's ``SessionRecord.dumps`` refuses anything else). A full JSON round trip per step
    cost more than the rest of the step's state handling."""
    copied = dict(state)
    if isinstance(stack := copied.get("stack"), list | tuple):
        copied["stack"] = list(stack)
    if isinstance(data := copied.get("data"), dict):
        copied["data"] = dict(data)
    return copied


def clean_input(value: str) -> str:
    """An answer without the spaces, ``*`` and ``#`` a caller used to dialling codes types around it
    (``1#``, ``*12345678#``): no answer starts or ends with them."""
    return value.strip().strip("*#").strip()


def new_state(lang: str = DEFAULT_LANGUAGE, screen: str = "main") -> State:
    return {"lang": lang, "screen": screen, "stack": [], "data": {}, "invalid": 0, "note": None}


class ScreenTooLong(AssertionError):
    """A screen did not size itself to the limit (raised only by a ``strict`` engine, in tests)."""


class Engine:
    """Drives screens registered by name. Pure: all registry access goes through ``Services``.

    ``strict`` raises :class:`ScreenTooLong` where the production engine would drop trailing lines.
    """

    def __init__(
        self, screens: Mapping[str, Screen], home: str = "main", resume: str = "resume", *, strict: bool = False
    ) -> None:
        self.screens = dict(screens)
        self.home = home
        self.resume_screen = resume
        self.strict = strict
        # the bodies of fixed screens shown without a note: (screen, language, code, with back/home) -> text
        self._fixed: dict[tuple[str, str, str, bool], str] = {}

    # --- public API -----------------------------------------------------------------------------

    def start(self, ctx: Context, saved: State | None = None) -> tuple[Reply, State]:
        """A new session: the main menu, or the resume offer when ``saved`` is a resumable state."""
        lang = ctx.services.language(ctx.phone) or DEFAULT_LANGUAGE
        ctx.lang = lang if lang in LANGUAGES else DEFAULT_LANGUAGE
        if saved is not None and self.resumable(saved):
            state = new_state(ctx.lang, self.resume_screen)
            state["data"] = {"saved": saved}
        else:
            state = new_state(ctx.lang, self.home)
        return self._show(ctx, state)

    def step(self, ctx: Context, state: State, value: str) -> tuple[Reply, State]:
        """Apply one input to the conversation."""
        state = _copy(state)
        ctx.lang = state.get("lang", DEFAULT_LANGUAGE)
        ctx.data = state.setdefault("data", {})
        value = clean_input(value)
        if state["stack"] and value == HOME:
            return self._apply(ctx, state, Home())
        screen = self.screens.get(state.get("screen", ""))
        if state["stack"] and value == BACK:
            return self._apply(ctx, state, (screen.back(ctx) if screen is not None else None) or Back())
        if screen is None:  # unknown (e.g. a screen renamed since): start over
            return self._apply(ctx, state, Home())
        return self._apply(ctx, state, screen.handle(ctx, value))

    def show(self, ctx: Context, state: State) -> tuple[Reply, State]:
        """The current screen again, with no input and no side effect."""
        state = _copy(state)
        ctx.lang = state.get("lang", DEFAULT_LANGUAGE)
        if state.get("screen") not in self.screens:
            state = new_state(ctx.lang, self.home)
        return self._show(ctx, state)

    def resumable(self, state: State) -> bool:
        screen = self.screens.get(state.get("screen", ""))
        return bool(screen and screen.resumable)

    # --- internals ------------------------------------------------------------------------------

    def _apply(self, ctx: Context, state: State, outcome: Outcome) -> tuple[Reply, State]:
        state["lang"] = ctx.lang  # a screen may have changed the language
        for _ in range(MAX_CHAIN):
            ctx.data = state["data"]
            state["note"] = None
            if isinstance(outcome, Stop):
                return Reply(self._fit(outcome.text), end=True), state
            if isinstance(outcome, Retry):
                state["invalid"] = state.get("invalid", 0) + 1
                if state["invalid"] >= MAX_INVALID:
                    return Reply(self._fit(ctx.t("end.invalid")), end=True, gave_up=True), state
                state["note"] = outcome.hint
                return self._show(ctx, state)
            if isinstance(outcome, Stay):
                state["note"] = outcome.note
                return self._show(ctx, state)
            if isinstance(outcome, Restore):
                if outcome.state.get("screen") not in self.screens:
                    outcome = Home()
                    continue
                saved = _copy(outcome.state)
                saved["lang"] = state["lang"]
                saved["invalid"] = 0
                saved["note"] = None  # the hint of an answer given before the session dropped
                return self._show(ctx, saved)
            state["invalid"] = 0
            if isinstance(outcome, Home):
                # Keys starting with "_" are for the whole session (e.g. activation misses).
                kept = {k: v for k, v in state["data"].items() if k.startswith("_")}
                state.update(screen=self.home, stack=[], data=kept)
                note = outcome.note
            elif isinstance(outcome, Back):
                state["screen"] = state["stack"].pop() if state["stack"] else self.home
                note = outcome.note
            else:
                if outcome.push:
                    state["stack"] = (state["stack"] + [state["screen"]])[-MAX_STACK:]
                state["screen"] = outcome.screen
                note = outcome.note
            ctx.data = state["data"]
            redirect = self.screens[state["screen"]].enter(ctx)
            if redirect is None:
                state["note"] = note
                return self._show(ctx, state)
            outcome = redirect
        raise RuntimeError("screen entry hooks redirect in a loop")

    def _show(self, ctx: Context, state: State) -> tuple[Reply, State]:
        ctx.lang = state["lang"]
        ctx.data = state["data"]
        screen = self.screens[state["screen"]]
        if not screen.fixed or state.get("note"):
            return Reply(self._body(ctx, state, screen), end=False), state
        key = (screen.name, ctx.lang, ctx.ussd_code, bool(state["stack"]))
        body = self._fixed.get(key)
        if body is None or self.strict:
            fresh = self._body(ctx, state, screen)
            if body is not None and fresh != body:
                raise AssertionError(f"fixed screen {screen.name!r} rendered {fresh!r}, before {body!r}")
            body = fresh
            if len(self._fixed) < MAX_FIXED:
                self._fixed[key] = body
        return Reply(body, end=False), state

    def _body(self, ctx: Context, state: State, screen: Screen) -> str:
        view = screen.render(ctx)
        lines = [state["note"]] if state.get("note") else []
        lines += list(view.lines) + layout.options_block(view.options)
        if state["stack"]:
            lines += layout.options_block([(BACK, ctx.t("nav.back")), (HOME, ctx.t("nav.home"))])
        return self._fit(layout.compose(lines), plain=True)

    def _fit(self, body: str, *, plain: bool = False) -> str:
        """Last guard: screens size themselves; should one not, drop whole trailing lines. A body
        not known to be printable ASCII (``plain``: ``layout.compose`` made it so) is made so first."""
        if not plain:
            body = layout.ascii_text(body)
        if self.strict and not layout.fits(body):
            raise ScreenTooLong(f"{len(body)} characters: {body!r}")
        while not layout.fits(body) and "\n" in body:
            body = body.rsplit("\n", 1)[0]
        return body[: layout.BODY_LIMIT]
