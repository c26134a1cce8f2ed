"""Engine mechanics through the real screens with a scripted registry: navigation, hints, limits,
paging, resume, language."""

from __future__ import annotations

import json
from datetime import date

import pytest

from menus.engine import Context, Engine, Outcome, Screen, Stay, View
from menus.texts import text
from tests.menus.menu_fakes import (
    DOB,
    ID_MATCH,
    ID_PINS_SPENT,
    OTP_OK,
    OTP_WRONG,
    PIN_EASY,
    PIN_OK,
    PIN_WRONG,
    Conversation,
    FakeServices,
)

MAIN_EN = "Welcome to Elimu\n1. Activate account\n2. Get learner UPI\n3. Learner status\n4. My account"
MAIN_SW = "Karibu Elimu\n1. Fungua akaunti\n2. Pata UPI ya mwanafunzi\n3. Hali ya mwanafunzi\n4. Akaunti yangu"
NAV = "\n0. Back\n00. Home"


def test_main_menu_has_no_back_and_home(talk):
    reply = talk.dial()
    assert reply.text == MAIN_EN and not reply.end


def test_stored_language_is_used_from_the_first_screen(talk, fake):
    fake.stored_language = "sw"
    assert talk.dial().text == MAIN_SW


def test_back_and_home_on_every_later_screen(talk):
    talk.dial()
    assert talk.send("4").text == "My account\n1. Change PIN\n2. Language\n3. Forgot PIN" + NAV
    assert talk.send("2").text == "Choose language:\n1. English\n2. Kiswahili" + NAV
    assert talk.send("0").text.startswith("My account")
    talk.send("2")
    assert talk.send("00").text == MAIN_EN
    assert talk.state["stack"] == []


def test_zero_and_double_zero_on_the_main_menu_show_it_again_uncounted(talk):
    talk.dial()
    talk.send("9")
    talk.send("9")
    for value in ("0", "00", "0"):
        reply = talk.send(value)
        assert reply.text == MAIN_EN and not reply.end
    assert talk.state["stack"] == []
    assert talk.send("9").end  # the third wrong answer: the two before 0 and 00 still count


def test_three_invalid_answers_end_politely(talk):
    talk.dial()
    talk.send("9")
    assert talk.send("x").text.startswith("Invalid choice.\n")
    reply = talk.send("")
    assert reply.end and reply.text == "Too many invalid answers. Please dial *384*1234# again."


def test_a_valid_answer_resets_the_invalid_count(talk):
    talk.dial()
    talk.send("9")
    talk.send("9")
    talk.send("4")
    talk.send("9")
    assert not talk.send("9").end


def test_language_choice_is_stored_and_switches_at_once(talk, fake):
    talk.dial()
    talk.send("4")
    talk.send("2")
    assert talk.send("2").text == MAIN_SW
    assert fake.calls == [("set_language", "sw")]
    assert talk.send("4").text.endswith("\n0. Rudi\n00. Mwanzo")


def test_learner_list_pages_with_more(talk):
    talk.dial()
    talk.send("3")
    first = talk.send(PIN_OK).text
    assert first.startswith("Choose a learner:\n1. ")
    assert "\n98. More\n0. Back\n00. Home" in first
    second = talk.send("98").text
    shown_first = [line for line in first.splitlines() if line[:1].isdigit() and not line.startswith(("98", "0"))]
    assert second.splitlines()[1].startswith(f"{len(shown_first) + 1}. ")
    # The last learner can be chosen from the last page.
    while "98. More" in talk.last.text:
        talk.send("98")
    assert talk.send("7").text.startswith("Zawadiamani S. (PP1)\n")


def test_back_on_a_later_page_shows_the_page_before(talk):
    talk.dial()
    talk.send("3")
    first = talk.send(PIN_OK).text
    second = talk.send("98").text
    assert talk.send("0").text == first  # back one page, not out of the list
    assert talk.send("98").text == second
    talk.send("0")
    assert talk.send("0").text.startswith("Welcome to Elimu")  # from the first page: the screen before the list


def test_wrong_pin_reasks_without_counting_as_invalid(talk):
    talk.dial()
    talk.send("2")
    talk.send(PIN_WRONG)
    talk.send(PIN_WRONG)
    reply = talk.send(PIN_WRONG)
    assert reply.text.startswith("Wrong PIN. 2 tries left.\nEnter your 4-digit PIN:") and not reply.end


def test_activation_misses_end_after_three_even_across_home(talk, fake):
    fake.active = False
    talk.dial()
    for _ in range(2):
        talk.send("1")
        talk.send("NOPE1")
        assert talk.send(DOB).text.startswith("Details do not match our records.\nEnter the learner's birth")
        talk.send("00")
    talk.send("1")
    talk.send("NOPE1")
    reply = talk.send(DOB)
    assert reply.end and "3 times" in reply.text


def test_easy_pins_end_the_session_after_six_even_across_home(talk, fake):
    """Refused PINs are not invalid answers (the code just verified is kept), but a session that
    keeps trying them ends: the policy refuses the learners' birthdays, which a session past the
    PIN could otherwise learn by trying every date. The count survives ``00``."""
    talk.dial()
    for value in ("4", "1", PIN_OK):  # my account, change PIN
        talk.send(value)
    for _ in range(3):
        assert talk.send(PIN_EASY).text.startswith("That PIN is too easy to guess")
    talk.send("00")
    for value in ("4", "1", PIN_OK):
        talk.send(value)
    for _ in range(2):
        assert not talk.send(PIN_EASY).end
    reply = talk.send(PIN_EASY)
    assert reply.end and reply.text.startswith("Too many PINs tried. Dial *384*")


@pytest.mark.parametrize(("active", "start", "lang"), [(False, ("1",), "en"), (True, ("4", "3"), "sw")])
def test_a_phone_past_its_pins_of_the_day_ends_at_the_details_not_after_the_code(talk, fake, active, start, lang):
    """Activation and reset end with the day's PIN limit when the registry says so at the details,
    in the caller's language: no code screen, no code checked (none was sent to spend)."""
    fake.active, fake.stored_language = active, lang
    talk.dial()
    for value in (*start, ID_PINS_SPENT):
        assert not talk.send(value).end
    reply = talk.send(DOB)
    assert reply.end and reply.text == {
        "en": "Too many PINs tried on this phone today. Try again tomorrow, or visit the school for help.",
        "sw": "PIN nyingi mno zimejaribiwa kwa simu hii leo. Jaribu tena kesho, au tembelea shule upate msaada.",
    }[lang]
    assert not [call for call in fake.calls if call[0] in ("check_otp", "send_otp", "activate")]


def test_pin_mismatch_goes_back_to_choosing(talk, fake):
    fake.active = False
    talk.dial()
    for value in ("1", ID_MATCH, DOB, OTP_OK):
        talk.send(value)
    assert talk.send(PIN_EASY).text.startswith(
        "That PIN is too easy to guess (like 1234, 1111, a year or a birthday).\nChoose a 4-digit PIN:")
    talk.send("8264")
    assert talk.send("8265").text.startswith("The PINs did not match.\nChoose a 4-digit PIN:")
    talk.send("8264")
    reply = talk.send("8264")
    assert reply.end and reply.text.startswith("Your account is active.")
    assert ("activate", 1, True) in fake.calls


def test_wrong_code_reasks_then_right_code_continues(talk, fake):
    fake.active = False
    talk.dial()
    for value in ("1", ID_MATCH, DOB):
        talk.send(value)
    assert talk.send(OTP_WRONG).text.startswith("Wrong code. 2 tries left.\nWe sent a 6-digit code")
    assert talk.send(OTP_OK).text.startswith("Choose a 4-digit PIN:")


def test_resume_offer_continue_restores_the_screen(talk, fake, engine):
    fake.active = False
    talk.dial()
    for value in ("1", ID_MATCH, DOB):
        talk.send(value)
    saved = json.loads(json.dumps(talk.state))
    assert engine.resumable(saved)
    again = type(talk)(engine, fake)
    assert again.dial(saved).text == "Your last session did not finish.\n1. Continue where you left off\n2. Start over"
    assert again.send("1").text.startswith("We sent a 6-digit code by SMS. Enter it:")
    assert again.send(OTP_OK).text.startswith("Choose a 4-digit PIN:")


@pytest.mark.parametrize("choice", ["2", "0", "00"])
def test_resume_offer_start_over_goes_home(talk, fake, engine, choice):
    """``2`` starts over; ``0`` and ``00`` too, as they do on every screen after the main menu."""
    fake.active = False
    talk.dial()
    talk.send("1")
    saved = talk.state
    again = type(talk)(engine, fake)
    again.dial(saved)
    assert again.send(choice).text == MAIN_EN


def test_main_menu_is_not_resumable(talk, engine):
    talk.dial()
    assert not engine.resumable(talk.state)
    assert type(talk)(engine, talk.services).dial(talk.state).text == MAIN_EN


def test_unknown_screen_in_state_starts_over(talk):
    talk.dial()
    talk.state["screen"] = "gone.screen"
    talk.state["stack"] = ["main"]
    assert talk.send("1").text == MAIN_EN


def test_resuming_a_state_whose_screen_no_longer_exists_goes_home(talk, fake, engine):
    saved = {"lang": "en", "screen": "act.otp", "stack": ["main"], "data": {}, "invalid": 0, "note": None}
    talk.dial(saved)
    saved["screen"] = "renamed.screen"
    talk.state["data"]["saved"] = saved
    assert talk.send("1").text == MAIN_EN


def test_showing_a_state_with_an_unknown_screen_shows_the_main_menu(talk, engine):
    talk.dial()
    talk.state["screen"] = "gone.screen"
    reply, state = engine.show(talk.ctx(), talk.state)
    assert reply.text == MAIN_EN and state["screen"] == "main"


def test_refused_pins_do_not_count_as_invalid_answers(talk, fake):
    """A parent who tries three easy PINs after verifying the code keeps the session (and the code):
    only malformed answers count towards the three that end it."""
    fake.active = False
    talk.dial()
    for value in ("1", ID_MATCH, DOB, OTP_OK):
        talk.send(value)
    for _ in range(4):
        reply = talk.send(PIN_EASY)
        assert not reply.end and "too easy" in reply.text
    talk.send("8264")
    reply = talk.send("8264")
    assert reply.end and reply.text.startswith("Your account is active.")



AGAIN = {"en": "For your security, please dial *384*1234# again and enter your PIN.",
         "sw": "Kwa usalama wako, tafadhali piga *384*1234# tena na uweke PIN yako."}


PIN_SCREEN = {"en": "Enter your 4-digit PIN:\n0. Back\n00. Home",
              "sw": "Weka PIN yako ya tarakimu 4:\n0. Rudi\n00. Mwanzo"}
CHOOSE = {"en": "Choose a learner:", "sw": "Chagua mwanafunzi:"}


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_a_resumed_code_screen_goes_back_to_the_list_through_the_pin(talk, fake, lang):
    """``pin_ok`` travels in a resumed state; the registry trusts only a PIN entered in the session
    asking. A state whose way back leads to the learner list, resumed in a new dial: ``0`` asks for
    the PIN (nothing of the list shown, no code sent), and the right PIN shows the list."""
    fake.pin_sessions, fake.stored_language = set(), lang
    saved = {"lang": lang, "screen": "upi.otp", "stack": ["main", "upi.pick"],
             "data": {"pin_ok": True, "learner": 1}, "invalid": 0, "note": None}
    talk.dial(saved)
    talk.send("1")
    reply = talk.send("0")
    assert not reply.end and reply.text == PIN_SCREEN[lang]
    assert talk.state["data"]["pin_ok"] is False and talk.state["stack"] == ["main"]
    assert not [call for call in fake.calls if call[0] == "send_otp"]
    assert talk.send(PIN_WRONG).text.startswith(("Wrong PIN. 2 tries left.", "PIN si sahihi."))
    listed = talk.send(PIN_OK)
    assert not listed.end and listed.text.startswith(CHOOSE[lang]) and "Jane W." in listed.text
    assert talk.state["screen"] == "upi.pick" and talk.state["stack"] == ["main"]
    assert talk.send("2").text.startswith(("We sent a 6-digit code", "Tumekutumia msimbo"))
    assert ("send_otp", "upi", 2) in fake.calls


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_a_resumed_code_screen_back_to_the_list_home_from_the_pin_screen(talk, fake, lang):
    """From the PIN screen it leads to, ``0`` is the main menu (the list was never shown)."""
    fake.pin_sessions, fake.stored_language = set(), lang
    saved = {"lang": lang, "screen": "upi.otp", "stack": ["main", "upi.pick"],
             "data": {"pin_ok": True, "learner": 1}, "invalid": 0, "note": None}
    talk.dial(saved)
    talk.send("1")
    talk.send("0")
    assert talk.send("0").text == (MAIN_EN if lang == "en" else MAIN_SW)


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_a_status_is_refused_to_a_session_without_its_own_pin(talk, fake, lang):
    fake.pin_sessions, fake.stored_language = set(), lang
    talk.dial()
    talk.send("3")
    assert talk.send(PIN_OK).text.startswith(("Choose a learner:", "Chagua mwanafunzi:"))
    shown = talk.send("2")  # the PIN of this session: the status (several learners: it stays open)
    assert not shown.end and shown.text.startswith("Jane W. (Form 4)\n")
    talk.dial()
    talk.send("3")
    talk.send(PIN_OK)
    fake.pin_sessions.clear()  # the registry's record expired while the list was shown
    reply = talk.send("2")
    assert reply.end and reply.text == AGAIN[lang]


def test_a_upi_code_is_refused_to_a_session_without_its_own_pin(talk, fake):
    fake.pin_sessions = set()
    talk.dial()
    talk.send("2")
    talk.send(PIN_OK)
    fake.pin_sessions.clear()
    reply = talk.send("1")
    assert reply.end and reply.text == AGAIN["en"]
    assert [call for call in fake.calls if call[0] == "send_otp"] == []


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_a_pin_change_is_refused_to_a_session_without_its_own_pin(talk, fake, lang):
    """The registry, not the menus' ``pin_ok``, decides that this session entered the current PIN:
    its refusal ends the change with 'dial again and enter your PIN', and no PIN is set."""
    fake.pin_sessions, fake.stored_language = set(), lang
    talk.dial()
    talk.send("4")
    talk.send("1")
    assert talk.send(PIN_OK).text.startswith(("Choose a new 4-digit PIN:", "Chagua PIN mpya"))
    fake.pin_sessions.clear()  # the registry's record expired while the new PIN was chosen
    talk.send("7391")
    reply = talk.send("7391")
    assert reply.end and reply.text == AGAIN[lang]
    assert ("set_pin",) not in fake.calls


def test_a_pin_change_in_the_session_of_its_pin_is_made(talk, fake):
    fake.pin_sessions = set()
    talk.dial()
    for value in ("4", "1", PIN_OK, "7391"):
        talk.send(value)
    reply = talk.send("7391")
    assert reply.end and reply.text == "Your PIN has been changed."
    assert ("set_pin",) in fake.calls


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_the_status_of_each_learner_in_one_session(talk, fake, lang):
    """Several learners: a status stays open, 0 goes back to the list's page it was picked from
    (the text is no longer held), another learner's status follows; a wrong answer shows it again;
    with one learner the status ends the session."""
    fake.stored_language = lang
    talk.dial()
    talk.send("3")
    first = talk.send(PIN_OK).text
    second = talk.send("98").text
    page = second.splitlines()
    number = page[1].split(".")[0]
    status = talk.send(number)
    assert not status.end and status.text.endswith(NAV if lang == "en" else "\n0. Rudi\n00. Mwanzo")
    assert status.text.startswith(page[1].split(". ", 1)[1])  # the learner picked: name (grade)
    assert talk.send("5").text == status.text and talk.state["invalid"] == 1
    assert talk.send("0").text == second
    assert "status_shown" not in talk.state["data"]
    assert talk.send("0").text == first
    other = talk.send("2")
    assert not other.end and other.text.startswith(first.splitlines()[2].split(". ", 1)[1])
    assert talk.send("00").text == (MAIN_EN if lang == "en" else MAIN_SW)
    assert talk.state["data"] == {}
    fake.learner_count = 1
    talk.dial()
    talk.send("3")
    assert talk.send(PIN_OK).end


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_a_upi_code_still_good_gives_its_screen_and_too_soon_ends(talk, fake, lang):
    """The registry's word decides, not the session's memory: ``STILL_GOOD`` (learner 5 in the fake;
    a code sent for it, perhaps in a session before this one) shows the code screen saying the code
    is still good, with 0 back to the list's page; ``TOO_SOON`` (learner 3) says wait."""
    fake.stored_language = lang
    talk.dial()
    talk.send("2")
    talk.send(PIN_OK)
    talk.send("98")
    reply = talk.send("5")
    still_good = {"en": "The code sent less than a minute ago is still good.\nWe sent a 6-digit code by SMS.",
                  "sw": "Msimbo uliotumwa chini ya dakika moja iliyopita bado ni halali.\nTumekutumia msimbo"}
    assert not reply.end and reply.text.startswith(still_good[lang])
    assert talk.state["screen"] == "upi.otp" and talk.state["data"]["learner"] == 5
    assert talk.send("0").text.startswith(CHOOSE[lang])
    reply = talk.send("3")
    assert reply.end and reply.text.startswith(("A code was sent less than a minute ago.", "Msimbo ulitumwa chini"))


CODE_SCREEN = {"en": "We sent a 6-digit code by SMS. Enter it:", "sw": "Tumekutumia msimbo wa tarakimu 6 kwa SMS. Uweke:"}


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_a_resumed_upi_code_screen_asks_for_the_pin_before_the_code(talk, fake, lang):
    """A state saved on the UPI code screen (``pin_ok`` in it), continued in a new dial: the code
    typed there is refused by the registry to a session without its own PIN, so it is not checked
    (still good), the PIN screen comes, and after the right PIN the code screen again, where the
    same code sends the UPI."""
    fake.pin_sessions, fake.stored_language = set(), lang
    saved = {"lang": lang, "screen": "upi.otp", "stack": ["main", "upi.pick"],
             "data": {"pin_ok": True, "learner": 2, "choices": [[1, "Wanjikumuthonimai N. (Grade 12)"],
                                                               [2, "Jane W. (Form 4)"]]},
             "invalid": 0, "note": None}
    talk.dial(saved)
    talk.send("1")
    reply = talk.send(OTP_OK)
    assert not reply.end and reply.text == PIN_SCREEN[lang]
    assert [call[0] for call in fake.calls if call[0] in ("check_otp", "send_upi")] == []
    again = talk.send(PIN_OK)
    assert not again.end and again.text.startswith(CODE_SCREEN[lang])
    assert talk.state["screen"] == "upi.otp" and talk.state["data"]["learner"] == 2
    done = talk.send(OTP_OK)
    assert done.end and done.text == {"en": "The UPI of Jane W. will come by SMS.",
                                      "sw": "UPI ya Jane W. itakuja kwa SMS."}[lang]
    assert ("send_upi", 2) in fake.calls


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_a_resumed_adding_code_screen_asks_for_the_pin_before_the_code(talk, fake, lang):
    """A learner being added to an active account, the session saved on the code screen and
    continued in a new dial: the PIN first (the code not checked), then the code screen, then added."""
    fake.pin_sessions, fake.stored_language = set(), lang
    saved = {"lang": lang, "screen": "act.otp", "stack": ["main"],
             "data": {"pin_ok": True, "adding": True, "after": "act.id", "learner": 1},
             "invalid": 0, "note": None}
    talk.dial(saved)
    talk.send("1")
    reply = talk.send(OTP_OK)
    assert not reply.end and reply.text == PIN_SCREEN[lang]
    assert [call[0] for call in fake.calls if call[0] in ("check_otp", "activate")] == []
    assert talk.send(PIN_OK).text.startswith(CODE_SCREEN[lang])
    done = talk.send(OTP_OK)
    assert done.end and done.text == {"en": "Learner added to your account. The UPI will come by SMS.",
                                      "sw": "Mwanafunzi ameongezwa kwenye akaunti yako. UPI itakuja kwa SMS."}[lang]
    assert ("activate", 1, False) in fake.calls


def test_a_first_activation_finished_after_another_session_activated_asks_to_dial_again(talk, fake):
    """The account became active (another session) while this one chose its PIN: the registry adds
    the learner only after the PIN in this session, so it is asked to dial again; nothing is added."""
    fake.active, fake.pin_sessions = False, set()
    talk.dial()
    for value in ("1", ID_MATCH, DOB, OTP_OK, "7391"):
        talk.send(value)
    fake.active = True
    reply = talk.send("7391")
    assert reply.end and reply.text == AGAIN["en"]
    assert not [call for call in fake.calls if call[0] == "activate"]


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_forgot_pin_after_backing_out_of_adding_a_learner_asks_no_pin(talk, fake, lang):
    """A parent who chose Activate account (an active account: the PIN screen), pressed ``0`` on it
    and then My account, Forgot PIN was asked for the PIN they had forgotten (the adding flag left
    by the first choice sent the reset's identifier screen to the PIN), its ``0`` back to My
    account and the right PIN on to adding a learner. Now the reset asks for a learner's details."""
    fake.stored_language = lang
    talk.dial()
    assert talk.send("1").text == PIN_SCREEN[lang]
    talk.send("0")
    talk.send("4")
    reply = talk.send("3")
    intro = {"en": "To reset your PIN, confirm a learner on your account.\nEnter the learner's birth",
             "sw": "Ili kuweka PIN upya, thibitisha mwanafunzi wa akaunti yako.\nWeka nambari"}[lang]
    assert not reply.end and reply.text.startswith(intro) and talk.state["screen"] == "rst.id"
    talk.send(ID_MATCH)
    assert talk.send(DOB).text.startswith(("We sent a 6-digit code", "Tumekutumia msimbo"))
    assert ("start_pin_reset", ID_MATCH, date(2015, 1, 5)) in fake.calls


def test_pins_taken_then_abandoned_count_towards_the_limit(talk, fake):
    """The policy refuses the learners' birthdays, so each answer on a choose-PIN screen tells
    whether that date is one. Only refusals were counted: a session past a reset code tried date
    after date, each one taken going to the confirm screen and ``0`` back, free, and the six
    refusals that end it came only with birthdays found. Now every PIN chosen counts: the seventh
    ends the session unjudged."""
    talk.dial()
    for value in ("4", "3", ID_MATCH, DOB, OTP_OK):
        talk.send(value)
    judged = []
    fake.pin_refused = lambda phone, pin: judged.append(pin) or pin == PIN_EASY
    for day in range(1, 7):
        reply = talk.send(f"{day:02d}09")
        assert not reply.end and reply.text.startswith("Enter the PIN again to confirm:")
        assert talk.send("0").text.startswith("Choose a new 4-digit PIN:")
    reply = talk.send("0709")
    assert reply.end and reply.text.startswith("Too many PINs tried. Dial *384*1234#")
    assert judged == [f"{day:02d}09" for day in range(1, 7)]
    assert talk.state["data"]["_pins_chosen"] == 6


class _Counted(Screen):
    """A fixed screen that counts its renders; ``leak`` renders the caller's phone (not fixed at all)."""

    name = "main"
    fixed = True

    def __init__(self, leak: bool = False) -> None:
        self.renders = 0
        self.leak = leak

    def render(self, ctx: Context) -> View:
        self.renders += 1
        return View(lines=(ctx.t("main.title"), *((ctx.phone,) if self.leak else ())), options=(("1", ctx.t("main.upi")),))

    def handle(self, ctx: Context, value: str) -> Outcome:
        return Stay(ctx.t("hint.choice")) if value == "1" else Stay()


def _dial(engine: Engine, phone: str, lang: str | None = None) -> Conversation:
    talk = Conversation(engine, FakeServices(stored_language=lang), phone=phone)
    talk.dial()
    return talk


def test_a_fixed_screen_is_composed_once_per_language_and_code():
    screen = _Counted()
    engine = Engine({"main": screen})
    first = _dial(engine, "+254712000001")
    assert _dial(engine, "+254712000002").last == first.last and screen.renders == 1
    assert first.send("2").text == first.last.text and screen.renders == 1  # shown again, no note
    assert first.send("1").text.startswith(text("en", "hint.choice")) and screen.renders == 2  # a note: composed
    assert _dial(engine, "+254712000003", "sw").last.text.startswith(text("sw", "main.title"))
    assert screen.renders == 3


def test_a_strict_engine_refuses_a_fixed_screen_that_renders_the_caller():
    engine = Engine({"main": _Counted(leak=True)}, strict=True)
    _dial(engine, "+254712000001")
    with pytest.raises(AssertionError, match="fixed screen 'main' rendered"):
        _dial(engine, "+254712000002")
