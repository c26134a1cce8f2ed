"""Every flow and error path as conversation scripts through POST /ussd/africastalking (SQLite + fakeredis)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select

from registry.models import AuditEvent, Guardian, GuardianLink, PhoneSetting, Transfer, TransferState
from tests.ussd.support import OTHER_PHONE, PHONE, PIN, STRANGER

MAIN_EN = """
< CON Welcome to Elimu
< 1. Activate account
< 2. Get learner UPI
< 3. Learner status
< 4. My account
"""
MAIN_SW = """
< CON Karibu Elimu
< 1. Fungua akaunti
< 2. Pata UPI ya mwanafunzi
< 3. Hali ya mwanafunzi
< 4. Akaunti yangu
"""


def audit(world, action: str) -> list[AuditEvent]:
    with world.db.transaction() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_activation_end_to_end_in_english(world, ussd, sms):
    learner = world.learner()
    phone = ussd()
    phone.script("dial" + MAIN_EN + """
    > 1
    < CON Enter the learner's birth certificate no. or assessment/index no.:
    < 0. Back
    < 00. Home
    > 12345678
    < CON Enter the learner's date of birth (DDMMYYYY):
    < ...
    > 05092014
    < CON We sent a 6-digit code by SMS. Enter it:
    < ...
    > {otp}
    < CON Choose a 4-digit PIN:
    < ...
    > 1234
    < CON That PIN is too easy to guess (like 1234, 1111, a year or a birthday).
    < Choose a 4-digit PIN:
    < ...
    > 2014
    < CON That PIN is too easy to guess (like 1234, 1111, a year or a birthday).
    < ...
    > 4826
    < CON Enter the PIN again to confirm:
    < ...
    > 4826
    < END Your account is active. The learner's UPI will come by SMS. To add another learner, dial *384*1234# and choose 1.
    """)
    bodies = sms.clear_bodies(PHONE)
    assert bodies[-1] == "Elimu: the UPI of Jane W. is A1B2C3. Keep it safe."
    assert [m.kind.value for m in sms.messages(PHONE)] == ["otp", "upi"]
    assert "******" in sms.messages(PHONE)[0].body and sms.last_otp(PHONE) not in sms.messages(PHONE)[0].body
    with world.db.transaction() as session:
        guardian = session.scalars(select(Guardian).where(Guardian.phone == PHONE)).one()
        assert guardian.is_active and guardian.pin_hash and PIN not in guardian.pin_hash
        assert session.scalars(select(GuardianLink.verified_at)).one() is not None
    [event] = audit(world, "upi_sent")
    assert (event.phone, event.learner_id, event.channel, event.reference) == (PHONE, learner, "ussd", phone.session_id)


def test_activation_in_kiswahili_by_assessment_number(world, ussd, sms):
    world.learner()
    phone = ussd()
    phone.script("dial" + MAIN_EN + """
    > 4
    > 2
    > 2""" + MAIN_SW + """
    > 1
    < CON Weka nambari ya cheti cha kuzaliwa au ya tathmini/mtihani ya mwanafunzi:
    < 0. Rudi
    < 00. Mwanzo
    > k2023000456
    < CON Weka tarehe ya kuzaliwa ya mwanafunzi (DDMMYYYY):
    < ...
    > 05092014
    < CON Tumekutumia msimbo wa tarakimu 6 kwa SMS. Uweke:
    < ...
    > {otp}
    < CON Chagua PIN ya tarakimu 4:
    < ...
    > 4826
    < CON Weka PIN tena kuthibitisha:
    < ...
    > 4826
    < END Akaunti yako imefunguliwa. UPI ya mwanafunzi itakuja kwa SMS. Kuongeza mwanafunzi mwingine, piga *384*1234# kisha uchague 1.
    """)
    bodies = sms.clear_bodies(PHONE)
    assert bodies[0].startswith("Msimbo wa Elimu: ") and bodies[1] == "Elimu: UPI ya Jane W. ni A1B2C3. Iweke salama."


def test_activation_by_exam_index_number(world, ussd):
    learner = world.learner(birth_cert=None, assessment=None)
    world.result(learner, "KCPE", 2023, "36611030002")
    ussd().script("""
    dial
    > 1
    > 36611030002
    > 05092014
    < CON We sent a 6-digit code by SMS. Enter it:
    < ...
    """)


def test_unlinked_phone_is_told_to_ask_the_school_in_both_languages(world, ussd, sms):
    world.learner()
    ussd(STRANGER).script("""
    dial
    > 1
    < END This phone is not on any school record. Ask the learner's school to add your number, then dial *384*1234# again.
    dial
    > 4
    > 2
    > 2
    > 1
    < END Simu hii haipo kwenye rekodi za shule. Omba shule ya mwanafunzi iongeze nambari yako, kisha piga *384*1234# tena.
    """)
    assert sms.messages(STRANGER) == []


def test_wrong_identity_or_date_gets_one_generic_message_and_three_end(world, ussd, sms):
    world.learner()
    world.learner(first="Otieno", upi="Z9Y8X7", birth_cert="99990000", assessment=None, phones=(OTHER_PHONE,))
    ussd().script("""
    dial
    > 1
    > 12345678
    > 01012014
    < CON Details do not match our records.
    < Enter the learner's birth certificate no. or assessment/index no.:
    < ...
    > 55555555
    > 05092014
    < CON Details do not match our records.
    < ...
    # another phone's learner, with the right date, is a miss too
    > 99990000
    > 05092014
    < END Details did not match 3 times. Ask the school to check the records.
    """)
    assert sms.messages() == []


def test_activation_misses_in_kiswahili(world, ussd):
    world.learner()
    phone = ussd()
    phone.script("""
    dial
    > 4
    > 2
    > 2
    > 1
    > 12345678
    > 3201201
    < CON Tumia DDMMYYYY, mf. 05092014.
    < Weka tarehe ya kuzaliwa ya mwanafunzi (DDMMYYYY):
    < ...
    > 01012014
    < CON Maelezo hayalingani na rekodi zetu.
    < ...
    > 1*2
    < CON Weka nambari pekee.
    < ...
    """)


def test_wrong_codes_three_times_end(world, ussd):
    world.learner()
    ussd().script("""
    dial
    > 1
    > 12345678
    > 05092014
    > 000000
    < CON Wrong code. 2 tries left.
    < We sent a 6-digit code by SMS. Enter it:
    < ...
    > 12345
    < CON Enter 6 digits.
    < ...
    > 000001
    < CON Wrong code. 1 try left.
    < ...
    > 000002
    < END Too many wrong codes. Dial *384*1234# to get a new one.
    """)


def test_code_expires_after_five_minutes(world, ussd, clock):
    world.learner()
    phone = ussd()
    phone.script("""
    dial
    > 1
    > 12345678
    > 05092014
    """)
    # The session drops; the caller resumes just inside the 5 minutes and types the code too late.
    clock.advance(minutes=4, seconds=50)
    phone.script("""
    dial
    < CON Your last session did not finish.
    < 1. Continue where you left off
    < 2. Start over
    > 1
    < CON We sent a 6-digit code by SMS. Enter it:
    < ...
    """)
    clock.advance(seconds=15)
    phone.script("""
    > {otp}
    < END The code has expired. Dial *384*1234# to get a new one.
    """)


def test_code_is_single_use(world, ussd, clock, sms):
    world.learner()
    world.learner(first="Amani", upi="Q1W2E3", birth_cert="222", assessment=None, verified=False)
    world.activate()
    phone = ussd()
    phone.script(f"""
    dial
    > 2
    > {PIN}
    > 1
    > {{otp}}
    < END The UPI of Amani W. will come by SMS.
    """)
    used = sms.last_otp(PHONE)
    clock.advance(seconds=61)
    phone.script(f"""
    dial
    > 2
    > {PIN}
    > 1
    """)
    phone.script(f"""
    > {used}
    < CON Wrong code. 2 tries left.
    < ...
    """)


def test_code_send_limits_gap_hour_and_day(world, ussd, clock):
    world.learner()
    phone = ussd()
    for _ in range(5):
        phone.script("redial\n> 1\n> 12345678\n> 05092014\n< CON We sent a 6-digit code by SMS. Enter it:\n< ...")
        phone.script("redial\n> 1\n> 12345678\n> 05092014\n"
                     "< CON The code sent less than a minute ago is still good.\n< ...")  # no new code
        phone.script("redial\n> 1\n> 12345679\n> 05092014\n"
                     "< END A code was sent less than a minute ago. Wait a minute, then dial *384*1234# again.")
        clock.advance(seconds=61)
    phone.script("redial\n> 1\n> 12345678\n> 05092014\n< END Too many codes were sent to this phone. Try again later.")
    clock.advance(hours=1)
    for _ in range(5):
        phone.script("redial\n> 1\n> 12345678\n> 05092014\n< CON We sent a 6-digit code by SMS. Enter it:\n< ...")
        clock.advance(seconds=61)
    clock.advance(hours=1)
    phone.script("redial\n> 1\n> 12345678\n> 05092014\n< END Too many codes were sent to this phone. Try again later.")
    # A ceiling is answered before the details are checked, so it never confirms a match (within the
    # minute only the details of the learner whose code is outstanding get its screen again).
    phone.script("redial\n> 1\n> 00000000\n> 01012000\n< END Too many codes were sent to this phone. Try again later.")


def test_get_upi_with_two_learners(world, ussd, sms):
    world.learner()
    second = world.learner(first="Brian", last="Otieno", upi="B7K9M2", birth_cert="777", assessment=None,
                           grade="Form 4")
    world.activate()
    phone = ussd()
    phone.script(f"""
    dial
    > 2
    < CON Enter your 4-digit PIN:
    < 0. Back
    < 00. Home
    > {PIN}
    < CON Choose a learner:
    < 1. Brian O. (Form 4)
    < 2. Jane W. (Grade 6)
    < 0. Back
    < 00. Home
    > 3
    < CON Invalid choice.
    < ...
    > 1
    < CON We sent a 6-digit code by SMS. Enter it:
    < ...
    > {{otp}}
    < END The UPI of Brian O. will come by SMS.
    """)
    assert sms.clear_bodies(PHONE)[-1] == "Elimu: the UPI of Brian O. is B7K9M2. Keep it safe."
    assert [(e.learner_id, e.reference) for e in audit(world, "upi_sent")] == [(second, phone.session_id)]


def test_get_upi_in_kiswahili(world, ussd, sms):
    world.learner()
    world.activate()
    with world.db.transaction() as session:
        session.add(PhoneSetting(phone=PHONE, language="sw"))
    ussd().script(f"""
    dial
    > 2
    < CON Weka PIN yako ya tarakimu 4:
    < ...
    > {PIN}
    < CON Tumekutumia msimbo wa tarakimu 6 kwa SMS. Uweke:
    < ...
    > {{otp}}
    < END UPI ya Jane W. itakuja kwa SMS.
    """)


def test_learner_status_released_transfer_and_results(world, ussd):
    learner = world.learner()
    world.result(learner, "KPSEA", 2024, "36611030002")
    world.result(learner, "KJSEA", 2025, "36611030003", released=False)
    new_school = world.school("XY12", "Moi Avenue Junior School")
    with world.db.transaction() as session:
        session.add(Transfer(learner_id=learner, from_institution_id=world.school(), to_institution_id=new_school,
                             state=TransferState.RELEASED, released_at=datetime(2026, 2, 1, tzinfo=UTC)))
    world.activate()
    phone = ussd()
    phone.script(f"""
    dial
    > 3
    > {PIN}
    < END Jane W. (Grade 6)
    < Kilimani Primary School
    < Released, awaiting admission by Moi Avenue Junior School
    < Results: KPSEA 2024
    """)
    [event] = audit(world, "status_shown")
    assert (event.learner_id, event.channel, event.reference) == (learner, "ussd", phone.session_id)


def test_learner_status_names_where_a_released_learner_goes_in_both_languages(world, ussd):
    """The school line is the releasing school: the state line names the school that will admit, or
    says any school may when the release had no request."""
    learner = world.learner()
    with world.db.transaction() as session:
        session.add(Transfer(learner_id=learner, from_institution_id=world.school(), to_institution_id=None,
                             state=TransferState.RELEASED, released_at=datetime(2026, 2, 1, tzinfo=UTC)))
    world.activate()
    ussd().script(f"""
    dial
    > 3
    > {PIN}
    < END Jane W. (Grade 6)
    < Kilimani Primary School
    < Released, awaiting admission by a new school
    < Results: none released
    dial
    > 4
    > 2
    > 2
    > 3
    > {PIN}
    < END Jane W. (Grade 6)
    < Kilimani Primary School
    < Ameruhusiwa kuhama, anasubiri kupokelewa na shule mpya
    < Matokeo: hakuna yaliyotolewa
    """)


def test_learner_status_in_kiswahili_enrolled_no_results(world, ussd):
    world.learner()
    world.activate()
    ussd().script(f"""
    dial
    > 4
    > 2
    > 2
    > 3
    > {PIN}
    < END Jane W. (Grade 6)
    < Kilimani Primary School
    < Amesajiliwa
    < Matokeo: hakuna yaliyotolewa
    """)


def test_learner_status_admitted(world, ussd):
    learner = world.learner()
    with world.db.transaction() as session:
        session.add(Transfer(learner_id=learner, from_institution_id=world.school("OLD1", "Old School"),
                             to_institution_id=world.school(), state=TransferState.ADMITTED,
                             admitted_at=datetime(2026, 1, 12, 9, tzinfo=UTC)))
    world.activate()
    ussd().script(f"dial\n> 3\n> {PIN}\n< END Jane W. (Grade 6)\n< Kilimani Primary School\n"
                  "< Admitted on 12/01/2026\n< Results: none released")


def test_pin_items_need_an_active_account(world, ussd):
    world.learner()
    ussd().script("""
    dial
    > 2
    < END Activate your account first: dial *384*1234# and choose 1.
    dial
    > 4
    > 1
    < END Activate your account first: dial *384*1234# and choose 1.
    dial
    > 4
    > 3
    < END Activate your account first: dial *384*1234# and choose 1.
    """)


def test_three_wrong_pins_lock_for_thirty_minutes(world, ussd, clock):
    world.learner()
    world.activate()
    phone = ussd()
    phone.script("""
    dial
    > 3
    > 1111
    < CON Wrong PIN. 2 tries left.
    < Enter your 4-digit PIN:
    < ...
    > 2222
    < CON Wrong PIN. 1 try left.
    < ...
    > 3333
    < END Wrong PIN 3 times. Your PIN is locked for 30 minutes. Forgot it? Choose My account, then Forgot PIN.
    """)
    clock.advance(minutes=10)
    phone.script("dial\n> 2\n< END Your PIN is locked. Try again in 20 min. Forgot it? Choose My account, then Forgot PIN.")
    phone.script("dial\n> 4\n> 2\n> 2\n> 3\n< END PIN yako imefungwa. Jaribu tena baada ya dakika 20. Umeisahau? Chagua Akaunti yangu, kisha Nimesahau PIN.")
    clock.advance(minutes=20, seconds=1)
    phone.script(f"dial\n> 3\n> {PIN}\n< END Jane W. (Grade 6)\n< ...")


def test_change_pin(world, ussd):
    world.learner()
    world.activate()
    phone = ussd()
    phone.script(f"""
    dial
    > 4
    < CON My account
    < 1. Change PIN
    < 2. Language
    < 3. Forgot PIN
    < 0. Back
    < 00. Home
    > 1
    > {PIN}
    < CON Choose a new 4-digit PIN:
    < ...
    > 9876
    < CON That PIN is too easy to guess (like 1234, 1111, a year or a birthday).
    < ...
    > 7391
    > 7391
    < END Your PIN has been changed.
    dial
    > 3
    > {PIN}
    < CON Wrong PIN. 2 tries left.
    < ...
    > 7391
    < END Jane W. (Grade 6)
    < ...
    """)


def test_forgotten_pin_reset_by_learner_details_and_code_also_unlocks(world, ussd, clock):
    world.learner()
    world.activate()
    phone = ussd()
    phone.script("dial\n> 2\n> 0001\n> 0002\n> 0003\n< END Wrong PIN 3 times. Your PIN is locked for 30 minutes. Forgot it? Choose My account, then Forgot PIN.")
    phone.script("""
    dial
    > 4
    > 3
    < CON To reset your PIN, confirm a learner on your account.
    < Enter the learner's birth certificate no. or assessment/index no.:
    < 0. Back
    < 00. Home
    > 12345678
    < CON Enter the learner's date of birth (DDMMYYYY):
    < ...
    > 05092014
    < CON We sent a 6-digit code by SMS. Enter it:
    < ...
    > {otp}
    < CON Choose a new 4-digit PIN:
    < ...
    > 5803
    < CON Enter the PIN again to confirm:
    < ...
    > 5830
    < CON The PINs did not match.
    < Choose a new 4-digit PIN:
    < ...
    > 5803
    > 5803
    < END Your PIN has been reset. Use the new PIN from now on.
    dial
    > 3
    > 5803
    < END Jane W. (Grade 6)
    < ...
    """)


def test_language_sticks_to_the_phone(world, ussd, sms):
    phone = ussd(STRANGER)
    phone.script("dial" + MAIN_EN + """
    > 4
    > 2
    < CON Choose language:
    < 1. English
    < 2. Kiswahili
    < 0. Back
    < 00. Home
    > 2""" + MAIN_SW + "\ndial" + MAIN_SW + """
    > 4
    > 2
    > 1""" + MAIN_EN + "\ndial" + MAIN_EN)
    with world.db.transaction() as session:
        assert session.get(PhoneSetting, STRANGER).language == "en"


def test_active_account_adds_another_learner(world, ussd, sms):
    world.learner(verified=True)
    world.activate()
    second = world.learner(first="Brian", last="Otieno", upi="B7K9M2", birth_cert="777", assessment=None)
    phone = ussd()
    phone.script(f"""
    dial
    > 1
    < CON Enter your 4-digit PIN:
    < ...
    > {PIN}
    < CON Enter the learner's birth certificate no. or assessment/index no.:
    < ...
    > 777
    > 05092014
    > {{otp}}
    < END Learner added to your account. The UPI will come by SMS.
    """)
    assert sms.clear_bodies(PHONE)[-1] == "Elimu: the UPI of Brian O. is B7K9M2. Keep it safe."
    with world.db.transaction() as session:
        link = session.scalars(select(GuardianLink).where(GuardianLink.learner_id == second)).one()
        assert link.verified_at is not None


def test_unverified_learners_are_not_listed(world, ussd):
    world.learner()
    world.activate()
    world.learner(first="Brian", last="Otieno", upi="B7K9M2", birth_cert="777", assessment=None)
    ussd().script(f"dial\n> 3\n> {PIN}\n< END Jane W. (Grade 6)\n< ...")


def test_back_home_and_invalid_answers(world, ussd):
    world.learner()
    ussd().script("""
    dial
    > 1
    > 12345678
    < CON Enter the learner's date of birth (DDMMYYYY):
    < ...
    > 0
    < CON Enter the learner's birth certificate no. or assessment/index no.:
    < ...
    > 00""" + MAIN_EN + """
    > 7
    < CON Invalid choice.
    < Welcome to Elimu
    < ...
    > #
    > hello
    < END Too many invalid answers. Please dial *384*1234# again.
    """)


def test_activation_code_comes_in_the_phones_language(world, ussd, sms):
    world.learner()
    with world.db.transaction() as session:
        session.add(PhoneSetting(phone=PHONE, language="sw"))
    ussd().script("dial\n> 1\n> 12345678\n> 05092014\n< CON Tumekutumia msimbo wa tarakimu 6 kwa SMS. Uweke:\n< ...")
    (code,) = sms.otps(PHONE)
    (message,) = sms.messages(PHONE)
    assert sms.clear_bodies(PHONE) == [f"Msimbo wa Elimu: {code}. Ni halali kwa dakika 5. Usimpe mtu yeyote."]
    assert message.body == "Msimbo wa Elimu: ******. Ni halali kwa dakika 5. Usimpe mtu yeyote."


def test_phone_number_in_national_format_is_the_same_caller(world, ussd, sms):
    world.learner()
    ussd(PHONE, wire_phone="0712345678").script("dial\n> 1\n> 12345678\n> 05092014\n< CON We sent a 6-digit code"
                                                 " by SMS. Enter it:\n< ...")
    assert len(sms.otps(PHONE)) == 1


def test_a_date_that_cannot_be_a_birth_date_is_said_so_and_not_counted_as_a_miss(world, ussd, sms):
    """31 February and a date after today (the clock is 2 March 2026) are typing slips: the hint says
    which, and they do not use up one of the three misses; a date typed with spaces or slashes is read."""
    world.learner()
    ussd().script("""
    dial
    > 1
    > 12345678
    > 31022015
    < CON There is no such date. Use DDMMYYYY, e.g. 05092014.
    < Enter the learner's date of birth (DDMMYYYY):
    < ...
    > 05092034
    < CON That date is in the future. Use DDMMYYYY, e.g. 05092014.
    < ...
    > 01012014
    < CON Details do not match our records.
    < ...
    > 12345678
    > 03032026
    < CON That date is in the future. Use DDMMYYYY, e.g. 05092014.
    < ...
    > 01012014
    < CON Details do not match our records.
    < ...
    > 12345678
    > 05 09 2014
    < CON We sent a 6-digit code by SMS. Enter it:
    < ...
    """)
    assert len(sms.otps(PHONE)) == 1


def test_date_hints_in_kiswahili(world, ussd):
    world.learner()
    ussd().script("""
    dial
    > 4
    > 2
    > 2
    > 1
    > 12345678
    > 30022014
    < CON Tarehe hiyo haipo. Tumia DDMMYYYY, mf. 05092014.
    < ...
    > 01012099
    < CON Tarehe hiyo bado haijafika. Tumia DDMMYYYY, mf. 05092014.
    < ...
    > 05/09/2014
    < CON Tumekutumia msimbo wa tarakimu 6 kwa SMS. Uweke:
    < ...
    """)


def test_a_stray_star_or_hash_around_an_answer_is_ignored(world, ussd):
    """Parents used to dialling codes type ``1#`` or ``*12345678#``: the answer inside is taken."""
    world.learner()
    ussd().script("""
    dial
    > 1#
    < CON Enter the learner's birth certificate no. or assessment/index no.:
    < ...
    > *1234 5678#
    < CON Enter the learner's date of birth (DDMMYYYY):
    < ...
    > 05092014#
    < CON We sent a 6-digit code by SMS. Enter it:
    < ...
    > 00#
    < CON Welcome to Elimu
    < ...
    """)


def test_account_menu_and_too_many_codes_in_kiswahili(world, ussd):
    world.learner()
    with world.db.transaction() as session:
        session.add(PhoneSetting(phone=PHONE, language="sw"))
    ussd().script("""
    dial
    > 4
    < CON Akaunti yangu
    < 1. Badilisha PIN
    < 2. Lugha
    < 3. Nimesahau PIN
    < 0. Rudi
    < 00. Mwanzo
    dial
    > 1
    > 12345678
    > 05092014
    > 000000
    > 000001
    > 000002
    < END Umekosea msimbo mara nyingi mno. Piga *384*1234# kupata msimbo mpya.
    """)


def test_activation_misses_are_limited_per_phone_per_day_not_only_per_session(world, ussd, sms, clock):
    """Three misses end a session, but a new session gave three more: the date of birth could be
    guessed session after session. Ten misses in a day stop activation from this phone until the
    day has passed, with the right details too, and the stop is said before any matching."""
    world.learner()
    phone = ussd()
    for _ in range(3):
        phone.script("redial\n> 1\n> 12345678\n> 01012014\n> 12345678\n> 02012014\n> 12345678\n> 03012014\n"
                     "< END Details did not match 3 times. Ask the school to check the records.")
    phone.script("redial\n> 1\n> 12345678\n> 04012014\n< CON Details do not match our records.\n< ...")
    phone.script("""
    redial
    > 1
    > 12345678
    > 05092014
    < END Details did not match too many times today. Try again tomorrow, or ask the school to check the records.
    """)
    assert sms.messages(PHONE) == []
    assert len(audit(world, "activation_miss")) == 10
    clock.advance(hours=24)
    phone.script("redial\n> 1\n> 12345678\n> 05092014\n< CON We sent a 6-digit code by SMS. Enter it:\n< ...")


def test_a_phone_alone_cannot_reset_the_pin(world, ussd, sms):
    """Whoever holds the phone got the reset code by SMS, so the PIN kept nobody out: a reset asks
    for a verified learner's details first, with the activation's misses and limits, and a learner
    linked but not verified on this phone does not count."""
    world.learner()
    world.activate()
    world.learner(first="Brian", last="Otieno", upi="B7K9M2", birth_cert="777", assessment=None)
    ussd().script("""
    dial
    > 4
    > 3
    > 777
    > 05092014
    < CON Details do not match our records.
    < Enter the learner's birth certificate no. or assessment/index no.:
    < ...
    > 12345678
    > 01012014
    < CON Details do not match our records.
    < ...
    > 12345678
    > 02012014
    < END Details did not match 3 times. Ask the school to check the records.
    """)
    assert sms.messages(PHONE) == []
    assert len(audit(world, "activation_miss")) == 3


def test_pin_reset_in_kiswahili(world, ussd):
    world.learner()
    world.activate()
    with world.db.transaction() as session:
        session.add(PhoneSetting(phone=PHONE, language="sw"))
    ussd().script("""
    dial
    > 4
    > 3
    < CON Ili kuweka PIN upya, thibitisha mwanafunzi wa akaunti yako.
    < Weka nambari ya cheti cha kuzaliwa au ya tathmini/mtihani ya mwanafunzi:
    < 0. Rudi
    < 00. Mwanzo
    > 12345678
    > 05092014
    > {otp}
    < CON Chagua PIN mpya ya tarakimu 4:
    < ...
    """)


def test_the_pin_policy_does_not_tell_an_unverified_learners_birthday(world, ussd):
    """Choosing a PIN refused the birth dates of every learner linked to the phone, so trying PINs
    told the day and month of a child the phone had never proved it knows; only the birth dates of
    learners verified on this phone (or being verified now) are refused."""
    world.learner()
    world.learner(first="Brian", last="Otieno", upi="B7K9M2", birth_cert="777", assessment=None,
                  born=date(2011, 7, 23))
    ussd().script("""
    dial
    > 1
    > 12345678
    > 05092014
    > {otp}
    > 0509
    < CON That PIN is too easy to guess (like 1234, 1111, a year or a birthday).
    < ...
    > 2307
    < CON Enter the PIN again to confirm:
    < ...
    """)
