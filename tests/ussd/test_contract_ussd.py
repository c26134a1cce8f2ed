"""CONTRACT.md "USSD conventions" and AT-PROTOCOL.md §1, through ``POST /ussd/africastalking``:
``N. Label`` options, ``0`` back and ``00`` home on every screen after the main menu, ``98. More``
paging, the main menu's items, a language any caller chooses that sticks to the phone, PIN items
for activated accounts only, E.164 whatever the wire format, and AT's ``*``-joined ``text``.
The activation flow's formats (DDMMYYYY, a 6-digit code, a 4-digit PIN) are walked end to end in
``test_ussd_flows.test_activation_end_to_end_in_english``.
"""

from __future__ import annotations

import re

import pytest

from registry.models import PhoneSetting
from tests.ussd.support import PHONE, PIN, STRANGER

MAIN = "CON Welcome to Elimu\n1. Activate account\n2. Get learner UPI\n3. Learner status\n4. My account"
RESUME_OFFERS = ("CON Your last session did not finish.", "CON Hukumaliza")
PIN_PROMPTS = ("CON Enter your 4-digit PIN:", "CON Weka PIN")
CODE_PROMPTS = ("CON We sent a 6-digit code", "CON Tumekutumia msimbo")
LANGUAGE_MENUS = ("CON Choose language", "CON Chagua lugha")
OPTION = re.compile(r"^(\d+)\. \S.*$")


def options(screen: str) -> list[str]:
    """The numbers of a screen's options other than back, home and more."""
    return [m.group(1) for line in screen.split("\n")[1:] if (m := OPTION.match(line))
            and m.group(1) not in ("0", "00", "98")]


def screen_after(ussd, inputs: list[str], phone: str = PHONE) -> str:
    """The screen a new session shows after ``inputs`` (AT's ``text``: every input so far, ``*``-joined)."""
    handset = ussd(phone)
    screen = handset.dial()
    if screen.startswith(RESUME_OFFERS):  # the walks leave sessions unfinished
        screen = handset.send("2")  # start over
    for value in inputs:
        screen = handset.send(value)
    return screen


def well_formed(screen: str) -> None:
    assert screen.startswith(("CON ", "END ")) and len(screen) <= 160, screen
    assert all(ch == "\n" or " " <= ch <= "~" for ch in screen), screen
    for line in screen.split("\n")[1:]:
        assert not line[:1].isdigit() or OPTION.match(line), f"an option line not 'N. Label': {line!r}"


def test_the_main_menu_offers_the_four_items_in_english_by_default(ussd):
    assert screen_after(ussd, [], STRANGER) == MAIN


@pytest.mark.parametrize("language", ["en", "sw"])
def test_zero_goes_back_one_screen_and_double_zero_home_on_every_screen_after_the_main_menu(world, ussd, language):
    """Every menu reachable within three choices (PIN prompts answered) of an activated account,
    in both languages."""
    for k in range(5):
        world.learner(first=f"Pupil{k}", upi=f"UPI{k:03d}", birth_cert=f"BC{k}", assessment=f"AS{k}")
    world.activate()
    if language == "sw":
        with world.db.transaction() as session:
            session.add(PhoneSetting(phone=PHONE, language="sw"))
    home = screen_after(ussd, [])
    assert home == MAIN if language == "en" else home.startswith("CON Karibu Elimu\n1. ")
    walked, queue = 0, [[]]
    while queue:
        path = queue.pop(0)
        screen = screen_after(ussd, path)
        well_formed(screen)
        # The walk stops at a code screen: it is not the same screen twice (a second visit within the
        # minute finds a code already sent), so its 0 is tested on its own below.
        if screen.startswith("END ") or screen.startswith(CODE_PROMPTS):
            continue
        if path and screen == home:  # a choice that ends at home (not "after the main menu")
            continue
        if path:
            # a PIN prompt already answered is a gate, not a screen to go back to: back goes to the
            # screen before it (the PIN is not asked twice)
            before = screen_after(ussd, path[:-1])
            if before.startswith(PIN_PROMPTS):
                before = screen_after(ussd, path[:-2])
            assert screen_after(ussd, [*path, "0"]) == before, f"0 after {path}"
            assert screen_after(ussd, [*path, "00"]) == home, f"00 after {path}"
            walked += 1
        if len(path) < 3:
            # the language is not switched here: it would stick to the phone (tested below)
            nexts = [] if screen.startswith(LANGUAGE_MENUS) else options(screen) or (
                [PIN] if screen.startswith(PIN_PROMPTS) else [])
            queue.extend([*path, choice] for choice in nexts)
    assert walked >= 10


def test_zero_on_the_upi_code_screen_goes_back_to_the_learner_list(world, ussd):
    world.learner()
    world.learner(first="Brian", upi="UPI001", birth_cert="BC1", assessment="AS1")
    world.activate()
    handset = ussd()
    handset.dial()
    handset.send("2")
    learners = handset.send(PIN)
    assert learners.startswith("CON Choose a learner:")
    assert handset.send("1").startswith("CON We sent a 6-digit code by SMS.")
    assert handset.send("0") == learners


def test_zero_on_the_upi_code_screen_of_an_only_learner_goes_home(world, ussd):
    """No list was shown (one learner is picked at once): back is the main menu, no second code."""
    world.learner()
    world.activate()
    handset = ussd()
    main = handset.dial()
    handset.send("2")
    assert handset.send(PIN).startswith("CON We sent a 6-digit code by SMS.")
    assert handset.send("0") == main


def test_a_long_list_pages_with_98_more(world, ussd):
    for k in range(12):
        world.learner(first=f"Pupil{k}", upi=f"UPI{k:03d}", birth_cert=f"BC{k}", assessment=f"AS{k}")
    world.activate()
    first = screen_after(ussd, ["2", PIN])
    assert "\n98. More\n" in first
    second = screen_after(ussd, ["2", PIN, "98"])
    assert "98. More" in second and set(options(first)).isdisjoint(options(second))
    assert screen_after(ussd, ["2", PIN, "98", "0"]) == first
    shown = set()
    path = ["2", PIN]
    while True:
        page = screen_after(ussd, path)
        shown.update(options(page))
        if "98. More" not in page:
            break
        path.append("98")
    assert len(shown) == 12


@pytest.mark.parametrize("wire", ["+254733999888", "254733999888", "0733999888", "733999888"])
def test_any_caller_chooses_the_language_and_it_sticks_to_the_e164_phone(ussd, wire):
    chosen = screen_after(ussd, ["4", "2", "2"], STRANGER)  # My account, Language, Kiswahili: no account needed
    assert chosen.startswith("CON Karibu Elimu\n1. Fungua akaunti")
    handset = ussd(STRANGER, wire_phone=wire)  # the same phone, however the network writes it
    assert handset.dial().startswith("CON Karibu Elimu")
    handset.send("4")
    assert handset.send("2").startswith("CON ")
    assert handset.send("1").startswith("CON Welcome to Elimu")  # back to English, for every format


@pytest.mark.parametrize("item", ["1", "3"])  # Change PIN, Forgot PIN
def test_the_pin_items_need_an_activated_account(world, ussd, item):
    world.learner()
    assert screen_after(ussd, ["4", item]).startswith("END Activate your account first")


def test_text_is_every_input_so_far_joined_with_stars(world, ussd, stack):
    """AT sends ``1*12345678`` on the third hop, not ``12345678`` alone."""
    world.learner()
    client = stack[3]
    hop = {"sessionId": "ATUid_star", "serviceCode": "*384*1234#", "phoneNumber": PHONE, "networkCode": "63902"}
    screens = [client.post("/ussd/africastalking", data={**hop, "text": text}).get_data(as_text=True)
               for text in ("", "1", "1*12345678")]
    assert screens[1].startswith("CON Enter the learner's birth certificate no.")
    assert screens[2].startswith("CON Enter the learner's date of birth (DDMMYYYY):")


@pytest.mark.parametrize("opening", [["1"], ["4", "3"]])  # Activate account; My account, Forgot PIN
def test_zero_on_the_code_screen_goes_back_one_screen_to_the_date_of_birth(world, ussd, opening):
    """The screen before the code screen is the date of birth: ``0`` shows it (the same date again
    finds the code still good), ``0`` there the identifier, ``00`` home, as on every other screen."""
    world.learner()
    if opening == ["4", "3"]:
        world.activate()  # a PIN is reset from an active account
    handset = ussd()
    main = handset.dial()
    screens = [handset.send(value) for value in [*opening, "12345678", "05092014"]]
    identifier, born, code = screens[-3:]
    assert born.startswith("CON Enter the learner's date of birth") and code.startswith(CODE_PROMPTS)
    assert handset.send("0") == born
    back = handset.send("0")  # the identifier screen (without the reset's opening line, said once)
    assert back.startswith("CON Enter the learner's birth certificate no.") and identifier.endswith(back[4:])
    handset.send("12345678")
    again = handset.send("05092014")
    assert again.startswith("CON The code sent less than a minute ago is still good.\n") and again.endswith(code[4:])
    assert handset.send("0") == born
    assert handset.send("00") == main


def test_zero_on_choosing_the_pin_goes_back_past_the_code_used_to_the_date_of_birth(world, ussd):
    """A code already accepted is a gate, not a screen to go back to (as a PIN already entered)."""
    world.learner()
    handset = ussd()
    handset.dial()
    born = [handset.send(value) for value in ["1", "12345678"]][-1]
    handset.send("05092014")
    assert handset.send("{otp}").startswith("CON Choose a 4-digit PIN:")
    assert handset.send("0") == born
