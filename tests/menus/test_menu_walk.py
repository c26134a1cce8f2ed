"""Walk every reachable screen, in both languages, for every kind of caller, with worst-case data.

A breadth-first search feeds each screen every input that matters (menu digits, back, home, more,
good and bad codes, PINs, identifiers, dates, junk) and checks each answer: at most 160 characters
with the ``CON ``/``END `` prefix, printable ASCII and newlines only, and a state that survives JSON
(the gateway keeps it in Redis). The engine is strict: a screen that would need trimming fails.
"""

from __future__ import annotations

import json
from collections import deque

import pytest

from menus.app import build_engine
from menus.engine import Reply
from menus.layout import SCREEN_LIMIT
from menus.texts import text
from tests.menus.menu_fakes import (
    DOB,
    ID_BLOCKED,
    ID_GONE,
    ID_LIMIT,
    ID_MATCH,
    ID_PINS_SPENT,
    ID_SOON,
    OTP_EXHAUSTED,
    OTP_EXPIRED,
    OTP_OK,
    OTP_WRONG,
    PIN_EASY,
    PIN_LOCK_NOW,
    PIN_LOCKED,
    PIN_OK,
    PIN_SPENT,
    PIN_WRONG,
    Conversation,
    FakeServices,
)

INPUTS = (
    "", "0", "00", "1", "2", "3", "4", "5", "6", "7", "98", "x", "*#",
    ID_MATCH, ID_SOON, ID_LIMIT, ID_GONE, ID_BLOCKED, ID_PINS_SPENT, DOB, "31022015", "01012099",
    OTP_OK, OTP_WRONG, OTP_EXPIRED, OTP_EXHAUSTED,
    PIN_OK, PIN_WRONG, PIN_LOCK_NOW, PIN_LOCKED, PIN_EASY, PIN_SPENT, "8264",
)
CALLERS = {
    "unlinked": dict(linked=False, active=False),
    "linked": dict(linked=True, active=False),
    "active": dict(linked=True, active=True, learner_count=7),
    "one learner": dict(linked=True, active=True, learner_count=1),
    "no learner": dict(linked=True, active=True, learner_count=0),
    "locked": dict(linked=True, active=True, locked_minutes=29),
}
MAX_DEPTH = 8


def check(reply: Reply) -> None:
    wire = ("END " if reply.end else "CON ") + reply.text
    assert len(wire) <= SCREEN_LIMIT, wire
    assert all(ch == "\n" or " " <= ch <= "~" for ch in wire), wire
    assert reply.text.strip() and reply.text == reply.text.strip(), wire
    assert ".," not in wire, wire  # a shortened name ("Our Lady.") is never followed by a comma


def state_key(state: dict) -> str:
    """States that render and behave alike: the path back is summarised by its last step, and the
    data by which keys it holds (values only where screens branch on them)."""
    data = state["data"]
    summary = [state["screen"], state["note"], state["invalid"], state["stack"][-1:], sorted(data),
               data.get("_misses"), data.get("after"), data.get("page")]
    return json.dumps(summary)


def walk(lang: str, caller: dict) -> tuple[set[str], set[str]]:
    """Every screen name, and every END text and status shown (a status stays open for a parent of
    several learners) reachable for this caller."""
    engine = build_engine(strict=True)
    start = Conversation(engine, FakeServices(stored_language=lang, **caller))
    check(start.dial())
    screens, endings = {start.state["screen"]}, set()
    seen = {state_key(start.state)}
    queue = deque([(start.state, 0)])
    while queue:
        state, depth = queue.popleft()
        given = json.dumps(state)
        for value in INPUTS:
            talk = Conversation(engine, FakeServices(stored_language=lang, **caller), state=state)
            reply = talk.send(value)
            check(reply)
            # the engine copies only the state's dict, stack and data: no screen changes a value in place
            assert json.dumps(state) == given, (state["screen"], value)
            if reply.end:
                endings.add(reply.text)
                continue
            restored = json.loads(json.dumps(talk.state))
            assert restored == talk.state
            screens.add(restored["screen"])
            if restored["screen"] == "status.show":
                endings.add(reply.text)
            key = state_key(restored)
            if key not in seen and depth < MAX_DEPTH:
                seen.add(key)
                queue.append((restored, depth + 1))
    return screens, endings


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_every_reachable_screen_fits_and_is_ascii(lang):
    screens, endings = set(), set()
    for caller in CALLERS.values():
        found, ended = walk(lang, caller)
        screens |= found
        endings |= ended
    # Resume is reached from a saved state, not by input: walk it separately.
    engine = build_engine(strict=True)
    saved = {"lang": lang, "screen": "act.otp", "stack": ["main", "act.id"], "data": {"learner": 1},
             "invalid": 0, "note": None}
    talk = Conversation(engine, FakeServices(stored_language=lang, linked=True, active=False))
    given = json.dumps(saved)
    check(talk.dial(saved))
    screens.add(talk.state["screen"])
    for value in ("9", "1"):
        check(talk.send(value))
    assert json.dumps(saved) == given  # restored as a copy
    assert screens == set(engine.screens), set(engine.screens) - screens
    # Every way a session can end was met (one generic miss message, lock, limits, status, ...),
    # and every learner's status.
    assert len(endings) >= 20
    assert text(lang, "pin.day_limit") in endings  # a PIN chosen past the PINs of the day


def test_unlinked_caller_never_sees_a_learner():
    for lang in ("en", "sw"):
        screens, endings = walk(lang, CALLERS["unlinked"])
        assert screens <= {"main", "acct", "lang"}
        assert not any("(" in text for text in endings)
