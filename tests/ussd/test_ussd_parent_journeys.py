"""Journeys a parent walks on a feature phone, end to end, where an earlier answer must not undo a later one."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from registry.models import AuditEvent, Learner
from tests.ussd.support import PHONE, PIN

TWO_LEARNERS_SW = """
< CON Chagua mwanafunzi:
< 1. Brian O. (Form 4)
< 2. Jane W. (Grade 6)
< 0. Rudi
< 00. Mwanzo
"""


def _two_learners(world) -> int:
    world.learner()
    second = world.learner(first="Brian", last="Otieno", upi="B7K9M2", birth_cert="777", assessment=None,
                           grade="Form 4")
    world.activate()
    return second


def test_back_to_the_list_and_the_same_learner_again_keeps_the_code_sent(world, ussd, sms):
    """0 on the UPI code screen shows the list again; a parent who picks the same learner within the
    minute is given the code screen again (the code in the SMS is still good), not 'dial again'."""
    _two_learners(world)
    ussd().script(f"""
    dial
    > 2
    > {PIN}
    > 1
    < CON We sent a 6-digit code by SMS. Enter it:
    < ...
    > 0
    < CON Choose a learner:
    < ...
    > 1
    < CON The code sent less than a minute ago is still good.
    < We sent a 6-digit code by SMS. Enter it:
    < 0. Back
    < 00. Home
    > {{otp}}
    < END The UPI of Brian O. will come by SMS.
    """)
    assert len(sms.otps(PHONE)) == 1
    assert sms.clear_bodies(PHONE)[-1] == "Elimu: the UPI of Brian O. is B7K9M2. Keep it safe."


def test_another_learner_within_the_minute_is_told_to_wait_in_kiswahili(world, ussd, sms):
    """The code sent is for the learner it was asked for: another learner within the minute waits."""
    _two_learners(world)
    phone = ussd()
    phone.script("dial\n> 4\n> 2\n> 2")
    phone.script(f"""
    dial
    > 2
    > {PIN}
    """ + TWO_LEARNERS_SW + """
    > 1
    > 0
    """ + TWO_LEARNERS_SW + """
    > 2
    < END Msimbo ulitumwa chini ya dakika moja iliyopita. Subiri dakika moja, kisha piga *384*1234# tena.
    """)
    assert len(sms.otps(PHONE)) == 1


def test_back_from_choosing_a_pin_does_not_offer_the_used_code_again(world, ussd):
    """The code was used to reach 'Choose a PIN'; 0 there (back past the code, to the date of birth)
    and the same details within the minute must not say that code is still good (it would then be
    refused as expired)."""
    world.learner()
    details = "> 12345678\n> 05092014\n"
    ussd().script("dial\n> 1\n" + details + """
    > {otp}
    < CON Choose a 4-digit PIN:
    < ...
    > 0
    < CON Enter the learner's date of birth (DDMMYYYY):
    < ...
    > 0
    < CON Enter the learner's birth certificate no. or assessment/index no.:
    < ...
    """ + details + """
    < END A code was sent less than a minute ago. Wait a minute, then dial *384*1234# again.
    """)


def test_back_from_choosing_a_new_pin_in_kiswahili(world, ussd):
    """The same for a forgotten PIN's reset code."""
    world.learner()
    world.activate()
    details = "> 12345678\n> 05092014\n"
    ussd().script("""
    dial
    > 4
    > 2
    > 2
    > 4
    > 3
    """ + details + """
    > {otp}
    < CON Chagua PIN mpya ya tarakimu 4:
    < ...
    > 0
    """ + details + """
    < END Msimbo ulitumwa chini ya dakika moja iliyopita. Subiri dakika moja, kisha piga *384*1234# tena.
    """)


RESUMED_BACK = {
    "en": """
    < CON Your last session did not finish.
    < ...
    > 1
    < CON We sent a 6-digit code by SMS. Enter it:
    < ...
    > 0
    < CON Enter your 4-digit PIN:
    < 0. Back
    < 00. Home
    > {pin}
    < CON Choose a learner:
    < 1. Brian O. (Form 4)
    < 2. Jane W. (Grade 6)
    < 0. Back
    < 00. Home
    > 1
    < CON The code sent less than a minute ago is still good.
    < We sent a 6-digit code by SMS. Enter it:
    < ...
    > {{otp}}
    < END The UPI of Brian O. will come by SMS.
    """,
    "sw": """
    < CON Hukumaliza ulichokuwa ukifanya mara ya mwisho.
    < ...
    > 1
    < CON Tumekutumia msimbo wa tarakimu 6 kwa SMS. Uweke:
    < ...
    > 0
    < CON Weka PIN yako ya tarakimu 4:
    < 0. Rudi
    < 00. Mwanzo
    > {pin}
    """ + TWO_LEARNERS_SW + """
    > 1
    < CON Msimbo uliotumwa chini ya dakika moja iliyopita bado ni halali.
    < Tumekutumia msimbo wa tarakimu 6 kwa SMS. Uweke:
    < ...
    > {{otp}}
    < END UPI ya Brian O. itakuja kwa SMS.
    """,
}


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_a_resumed_code_screen_goes_back_to_the_list_through_the_pin(world, ussd, sms, lang):
    """A parent whose session dropped on the UPI code screen dials again, continues, and presses 0:
    the new session has entered no PIN, so the list is not shown (it was: 'dial again') but the
    PIN is asked for, and after it the list; the code already sent is still good."""
    _two_learners(world)
    phone = ussd()
    if lang == "sw":
        phone.script("dial\n> 4\n> 2\n> 2")
    phone.script(f"dial\n> 2\n> {PIN}\n> 1\n< CON {'We sent' if lang == 'en' else 'Tumekutumia'}\n< ...")
    phone.script("dial\n" + RESUMED_BACK[lang].format(pin=PIN))
    assert len(sms.otps(PHONE)) == 1
    assert "B7K9M2" in sms.clear_bodies(PHONE)[-1]


def test_a_resumed_code_screen_then_0_and_a_wrong_pin_shows_nothing(world, ussd, sms):
    _two_learners(world)
    phone = ussd()
    phone.script(f"dial\n> 2\n> {PIN}\n> 1")
    phone.script("dial\n> 1\n> 0\n> 0001\n< CON Wrong PIN. 2 tries left.\n< Enter your 4-digit PIN:\n< ...\n"
                 "> 0002\n> 0003\n< END Wrong PIN 3 times. Your PIN is locked for 30 minutes. Forgot it? "
                 "Choose My account, then Forgot PIN.")
    assert [m.kind.value for m in sms.messages(PHONE)] == ["otp"]


TWELVE = ("Jane", "Brian", "Achieng", "Mary", "Kiptoo", "Nafula", "Zawadi", "Otieno", "Wambui", "Mutua",
          "Akinyi", "Chebet")


def _twelve_learners(world) -> None:
    """A guardian of twelve learners (the list shows four a page, by first name)."""
    for i, first in enumerate(TWELVE):
        world.learner(first=first, last="Kamau", upi=f"U{i:05d}", birth_cert=f"BC{i}", assessment=None,
                      grade=("Grade 6", "Form 4", "PP1")[i % 3])
    world.activate()


LIST_PAGES = {
    "en": ("Choose a learner:", "98. More", "0. Back", "00. Home"),
    "sw": ("Chagua mwanafunzi:", "98. Zaidi", "0. Rudi", "00. Mwanzo"),
}
PAGE_ITEMS = (
    ("1. Achieng K. (PP1)", "2. Akinyi K. (Form 4)", "3. Brian K. (Form 4)", "4. Chebet K. (PP1)"),
    ("5. Jane K. (Grade 6)", "6. Kiptoo K. (Form 4)", "7. Mary K. (Grade 6)", "8. Mutua K. (Grade 6)"),
    ("9. Nafula K. (PP1)", "10. Otieno K. (Form 4)", "11. Wambui K. (PP1)", "12. Zawadi K. (Grade 6)"),
)


def page_screen(lang: str, page: int) -> str:
    """The learner list's page ``page`` (0-based) as a script's expected screen."""
    title, more, back, home = LIST_PAGES[lang]
    lines = [f"CON {title}", *PAGE_ITEMS[page], *([more] if page < len(PAGE_ITEMS) - 1 else []), back, home]
    return "\n".join(f"< {line}" for line in lines)


def _kiswahili(phone) -> None:
    phone.script("dial\n> 4\n> 2\n> 2\n< CON Karibu Elimu\n< ...")


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_back_from_a_second_page_pick_returns_to_that_page(world, ussd, sms, lang):
    """A guardian of twelve learners pages to the second page, picks Kiptoo for the UPI and presses 0
    on the code screen: the second page comes back (it was the first), 0 again the first page, and
    the learner picked again from there gets the code already sent."""
    _twelve_learners(world)
    phone = ussd()
    if lang == "sw":
        _kiswahili(phone)
    code = "CON We sent a 6-digit code" if lang == "en" else "CON Tumekutumia msimbo"
    phone.script(f"dial\n> 2\n> {PIN}\n{page_screen(lang, 0)}\n> 98\n{page_screen(lang, 1)}\n"
                 f"> 6\n< {code}\n< ...\n> 0\n{page_screen(lang, 1)}\n> 0\n{page_screen(lang, 0)}\n"
                 f"> 98\n> 6\n< ...\n> {{otp}}\n"
                 + ("< END The UPI of Kiptoo K. will come by SMS." if lang == "en" else
                    "< END UPI ya Kiptoo K. itakuja kwa SMS."))
    assert len(sms.otps(PHONE)) == 1
    assert sms.clear_bodies(PHONE)[-1].endswith("U00004" + (". Keep it safe." if lang == "en" else ". Iweke salama."))


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_a_resumed_third_page_pick_goes_back_to_its_page_through_the_pin(world, ussd, lang):
    """The same after a dropped session: continue on the code screen, 0, the PIN, then the page the
    learner was picked from."""
    _twelve_learners(world)
    phone = ussd()
    if lang == "sw":
        _kiswahili(phone)
    phone.script(f"dial\n> 2\n> {PIN}\n> 98\n> 98\n{page_screen(lang, 2)}\n> 10\n< ...")
    pin = "Enter your 4-digit PIN:" if lang == "en" else "Weka PIN yako ya tarakimu 4:"
    phone.script(f"dial\n> 1\n> 0\n< CON {pin}\n< ...\n> {PIN}\n{page_screen(lang, 2)}\n> 0\n{page_screen(lang, 1)}")


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_a_learner_not_shown_yet_is_not_picked(world, ussd, sms, lang):
    """9 on the second page (5 to 8 shown: a slip for 98) is a wrong choice, on that page, and sends
    no code; from the third page 9 is Nafula, and a number from a page before is still good."""
    _twelve_learners(world)
    phone = ussd()
    if lang == "sw":
        _kiswahili(phone)
    wrong = "< CON Invalid choice." if lang == "en" else "< CON Chaguo si sahihi."
    phone.script(f"dial\n> 2\n> {PIN}\n> 98\n> 9\n{wrong}\n{page_screen(lang, 1).replace('< CON ', '< ')}\n"
                 f"> 12\n{wrong}\n< ...\n> 98\n{page_screen(lang, 2)}\n> 00")
    assert sms.otps(PHONE) == []
    enrolled = "Enrolled" if lang == "en" else "Amesajiliwa"
    phone.script(f"dial\n> 3\n> {PIN}\n> 98\n> 98\n> 9\n< CON Nafula K. (PP1)\n< Kilimani Primary School\n"
                 f"< {enrolled}\n< ...")
    phone.script(f"dial\n> 3\n> {PIN}\n> 98\n> 2\n< CON Akinyi K. (Form 4)\n< ...")


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_more_on_the_last_page_says_so_and_is_not_a_wrong_answer(world, ussd, lang):
    """98 on the last page (no 98 shown, pressed from habit) says there is no more, on that page,
    and three of them do not end the session as three wrong answers do."""
    _twelve_learners(world)
    phone = ussd()
    if lang == "sw":
        _kiswahili(phone)
    note = "< CON No more pages." if lang == "en" else "< CON Hakuna zaidi."
    last = page_screen(lang, 2).replace("< CON ", "< ")
    phone.script(f"dial\n> 3\n> {PIN}\n> 98\n> 98\n> 98\n{note}\n{last}\n> 98\n> 98\n{note}\n{last}\n"
                 f"> 12\n< CON Zawadi K. (Grade 6)\n< ...")


MAIN = {
    "en": "< CON Welcome to Elimu\n< 1. Activate account\n< 2. Get learner UPI\n< 3. Learner status\n< 4. My account",
    "sw": "< CON Karibu Elimu\n< 1. Fungua akaunti\n< 2. Pata UPI ya mwanafunzi\n< 3. Hali ya mwanafunzi\n"
          "< 4. Akaunti yangu",
}


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_one_zero_too_many_on_the_way_home_shows_the_main_menu(world, ussd, lang):
    """A parent backing out of the list presses 0 once more than needed, or 00 when already home:
    the main menu again, not 'Invalid choice', and the menu still answers."""
    _twelve_learners(world)
    phone = ussd()
    if lang == "sw":
        _kiswahili(phone)
    phone.script(f"dial\n> 2\n> {PIN}\n> 98\n> 0\n> 0\n{MAIN[lang]}\n> 0\n{MAIN[lang]}\n> 00\n{MAIN[lang]}\n"
                 f"> 3\n> {PIN}\n{page_screen(lang, 0)}")


STATUS_OF = {
    "en": ("< CON Akinyi K. (Form 4)\n< Kilimani Primary School\n< Enrolled\n< Results: none released\n"
           "< 0. Back\n< 00. Home",
           "< CON Kiptoo K. (Form 4)\n< Kilimani Primary School\n< Enrolled\n< Results: KCSE 2025\n"
           "< 0. Back\n< 00. Home"),
    "sw": ("< CON Akinyi K. (Form 4)\n< Kilimani Primary School\n< Amesajiliwa\n< Matokeo: hakuna yaliyotolewa\n"
           "< 0. Rudi\n< 00. Mwanzo",
           "< CON Kiptoo K. (Form 4)\n< Kilimani Primary School\n< Amesajiliwa\n< Matokeo: KCSE 2025\n"
           "< 0. Rudi\n< 00. Mwanzo"),
}


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_the_status_of_each_learner_in_one_session(world, ussd, lang):
    """A guardian of twelve learners sees one learner's status, goes back with 0 to the list, pages
    on and sees another's (the second page's Kiptoo), back to the page it was picked from, and 00
    goes home: one dial and one PIN, each status audited as shown."""
    _twelve_learners(world)
    with world.db.transaction() as session:
        kiptoo = session.scalars(select(Learner.id).where(Learner.first_name == "Kiptoo")).one()
    world.result(kiptoo, "KCSE", 2025, "36611030002")
    phone = ussd()
    if lang == "sw":
        _kiswahili(phone)
    akinyi, kiptoo_status = STATUS_OF[lang]
    phone.script(f"dial\n> 3\n> {PIN}\n> 2\n{akinyi}\n> 0\n{page_screen(lang, 0)}\n> 98\n> 6\n{kiptoo_status}\n"
                 f"> 7\n{kiptoo_status}\n> 0\n{page_screen(lang, 1)}\n> 6\n> 00\n{MAIN[lang]}")
    with world.db.transaction() as session:
        shown = session.scalars(select(AuditEvent.learner_id).where(AuditEvent.action == "status_shown")).all()
    assert len(shown) == 3 and shown.count(kiptoo) == 2


UPI_AGAIN = {
    "en": ("We sent a 6-digit code by SMS. Enter it:", "The code sent less than a minute ago is still good.",
           "A code was sent less than a minute ago. Wait a minute, then dial *384*1234# again.",
           "The UPI of Brian O. will come by SMS.", "Wrong code. 1 try left.",
           "Too many wrong codes. Dial *384*1234# to get a new one.", "Your last session did not finish."),
    "sw": ("Tumekutumia msimbo wa tarakimu 6 kwa SMS. Uweke:",
           "Msimbo uliotumwa chini ya dakika moja iliyopita bado ni halali.",
           "Msimbo ulitumwa chini ya dakika moja iliyopita. Subiri dakika moja, kisha piga *384*1234# tena.",
           "UPI ya Brian O. itakuja kwa SMS.", "Msimbo si sahihi. Jaribio 1 limebaki.",
           "Umekosea msimbo mara nyingi mno. Piga *384*1234# kupata msimbo mpya.",
           "Hukumaliza ulichokuwa ukifanya mara ya mwisho."),
}


def _start_over(lang: str) -> str:
    """A new dial after a session dropped on the code screen: the offer to resume, declined."""
    return f"dial\n< CON {UPI_AGAIN[lang][6]}\n< ...\n> 2\n"


def _upi_code_sent(world, ussd, lang: str):
    """Two learners; a session that picks Brian (1) for the UPI, is sent a code and drops on its screen."""
    _two_learners(world)
    phone = ussd()
    if lang == "sw":
        _kiswahili(phone)
    phone.script(f"dial\n> 2\n> {PIN}\n> 1\n< CON {UPI_AGAIN[lang][0]}\n< ...")
    return phone


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_a_new_session_within_the_minute_and_the_same_learner_keep_the_code_sent(world, ussd, sms, lang):
    """The session drops on the UPI code screen and the parent dials again within the minute, starting
    over (a new session, not the resumed one): after the PIN, the same learner gives the code screen
    again saying the code sent is still good (it was 'wait a minute'), no second code, and that code
    gives the UPI."""
    enter, still_good, *_ = UPI_AGAIN[lang]
    phone = _upi_code_sent(world, ussd, lang)
    phone.script(_start_over(lang) + f"> 2\n> {PIN}\n> 1\n< CON {still_good}\n< {enter}\n< ...\n> {{otp}}\n"
                 f"< END {UPI_AGAIN[lang][3]}")
    assert len(sms.otps(PHONE)) == 1
    assert "B7K9M2" in sms.clear_bodies(PHONE)[-1]


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_a_new_session_within_the_minute_and_another_learner_waits(world, ussd, sms, lang):
    """The code outstanding is Brian's: Jane (2) in the new session within the minute still waits."""
    phone = _upi_code_sent(world, ussd, lang)
    phone.script(_start_over(lang) + f"> 2\n> {PIN}\n> 2\n< END {UPI_AGAIN[lang][2]}")
    assert len(sms.otps(PHONE)) == 1


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_wrong_codes_count_across_sessions(world, ussd, sms, lang):
    """Two wrong codes, the session drops, a new one within the minute: the code screen comes back
    with the one try left, and a third wrong code ends it; the next session within the minute is told
    to wait (a spent code is not offered)."""
    enter, still_good, wait, _, last_try, exhausted, _ = UPI_AGAIN[lang]
    phone = _upi_code_sent(world, ussd, lang)
    phone.script(f"> 000000\n> 000001\n< CON {last_try}\n< ...")
    phone.script(_start_over(lang) + f"> 2\n> {PIN}\n> 1\n< CON {still_good}\n< {enter}\n< ...\n> 000002\n< END {exhausted}")
    phone.script(f"dial\n> 2\n> {PIN}\n> 1\n< END {wait}")  # it ended: no offer to resume
    assert len(sms.otps(PHONE)) == 1 and "B7K9M2" not in " ".join(sms.clear_bodies(PHONE))


def test_a_used_upi_code_is_not_offered_to_a_new_session(world, ussd, sms):
    """The code gave the UPI; the same learner in a new session within the minute waits."""
    phone = _upi_code_sent(world, ussd, "en")
    phone.script("> {otp}\n< END The UPI of Brian O. will come by SMS.")
    phone.script(f"dial\n> 2\n> {PIN}\n> 1\n< END {UPI_AGAIN['en'][2]}")
    assert len(sms.otps(PHONE)) == 1


def test_a_new_session_within_the_minute_on_postgres_and_redis(real_stack, real_ussd):
    """The same learner again in a new session on the real servers: the code screen, no second code."""
    _, sms, world, _ = real_stack
    test_a_new_session_within_the_minute_and_the_same_learner_keep_the_code_sent(world, real_ussd, sms, "sw")


DETAILS_AGAIN = {
    "en": ("Enter the learner's birth certificate no. or assessment/index no.:",
           "The code sent less than a minute ago is still good.", "We sent a 6-digit code by SMS. Enter it:",
           "Choose a 4-digit PIN:", "Choose a new 4-digit PIN:",
           "A code was sent less than a minute ago. Wait a minute, then dial *384*1234# again."),
    "sw": ("Weka nambari ya cheti cha kuzaliwa au ya tathmini/mtihani ya mwanafunzi:",
           "Msimbo uliotumwa chini ya dakika moja iliyopita bado ni halali.",
           "Tumekutumia msimbo wa tarakimu 6 kwa SMS. Uweke:", "Chagua PIN ya tarakimu 4:",
           "Chagua PIN mpya ya tarakimu 4:",
           "Msimbo ulitumwa chini ya dakika moja iliyopita. Subiri dakika moja, kisha piga *384*1234# tena."),
}
RESET_DONE = {"en": "Your PIN has been reset. Use the new PIN from now on.",
              "sw": "PIN yako imewekwa upya. Tumia PIN mpya kuanzia sasa."}
BORN = {"en": "Enter the learner's date of birth (DDMMYYYY):", "sw": "Weka tarehe ya kuzaliwa ya mwanafunzi (DDMMYYYY):"}
JANE = "> 12345678\n> 05092014\n"
BRIAN = "> 777\n> 01022010\n"


def _two_linked(world) -> None:
    """Jane and Brian linked to the phone, not yet activated."""
    world.learner()
    world.learner(first="Brian", last="Otieno", born=date(2010, 2, 1), upi="B7K9M2", birth_cert="777",
                  assessment=None, grade="Form 4")


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_activation_in_a_new_session_within_the_minute_keeps_the_code_sent(world, ussd, sms, lang):
    """The session drops on the activation code screen; the parent dials again within the minute,
    starts over and types the same details: the code screen, the code sent still good (it was 'wait a
    minute'), no second code, and that code leads on to choosing the PIN."""
    _two_linked(world)
    _, still_good, enter, choose, _, wait = DETAILS_AGAIN[lang]
    phone = ussd()
    if lang == "sw":
        _kiswahili(phone)
    phone.script("dial\n> 1\n" + JANE + f"< CON {enter}\n< ...")
    phone.script(_start_over(lang) + "> 1\n" + JANE + f"< CON {still_good}\n< {enter}\n< ...\n> {{otp}}\n"
                 f"< CON {choose}\n< ...")
    assert len(sms.otps(PHONE)) == 1


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_activation_of_another_learner_within_the_minute_waits(world, ussd, sms, lang):
    """The code outstanding is Jane's: Brian's details within the minute, in a new session or back
    from the code screen in the same one, are told to wait (the code screen would activate Jane)."""
    _two_linked(world)
    identifier, _, enter, _, _, wait = DETAILS_AGAIN[lang]
    phone = ussd()
    if lang == "sw":
        _kiswahili(phone)
    born = BORN[lang]  # 0 on the code screen: the date of birth, 0 again the identifier
    phone.script("dial\n> 1\n" + JANE + f"< CON {enter}\n< ...\n> 0\n< CON {born}\n< ...\n> 0\n"
                 f"< CON {identifier}\n< ...\n" + BRIAN + f"< END {wait}")
    phone.script("dial\n> 1\n" + BRIAN + f"< END {wait}")
    assert len(sms.otps(PHONE)) == 1


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_a_pin_reset_in_a_new_session_within_the_minute_keeps_the_code_sent(world, ussd, sms, lang):
    """The same for a forgotten PIN: the same details in a new session within the minute give the
    code screen, and the code sent leads on to choosing the new PIN; once that code is used (the new
    PIN set), a new session within the minute is told to wait."""
    _two_learners(world)
    _, still_good, enter, _, choose_new, wait = DETAILS_AGAIN[lang]
    phone = ussd()
    if lang == "sw":
        _kiswahili(phone)
    phone.script("dial\n> 4\n> 3\n" + JANE + f"< CON {enter}\n< ...")
    phone.script(_start_over(lang) + "> 4\n> 3\n" + JANE + f"< CON {still_good}\n< {enter}\n< ...\n"
                 f"> {{otp}}\n< CON {choose_new}\n< ...\n> 5803\n> 5803\n< END {RESET_DONE[lang]}")
    phone.script("dial\n> 4\n> 3\n" + JANE + f"< END {wait}")
    assert len(sms.otps(PHONE)) == 1
