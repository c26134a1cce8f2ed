"""The texts of SMS replies, in English and Kiswahili. GSM-7 only (plain ASCII), so none switches to UCS-2."""

from __future__ import annotations

LANGUAGES = ("en", "sw")

TEXTS: dict[str, dict[str, str]] = {
    "help": {
        "en": "Elimu: for results send KCSE <index no> <one of the candidate's names> (also KCPE; KPSEA and "
              "KJSEA with the <assessment no>). Send UPI for your learners' UPIs, STOP to stop announcements. "
              "More: dial {ussd}",
        "sw": "Elimu: kwa matokeo tuma KCSE <nambari ya mtihani> <jina moja la mtahiniwa> (pia KCPE; KPSEA na "
              "KJSEA kwa <nambari ya tathmini>). Tuma UPI kupata UPI za wanafunzi wako, SITISHA kusitisha "
              "matangazo. Zaidi: piga {ussd}",
    },
    "unknown": {
        "en": "Sorry, we did not understand that. Send HELP for the commands or dial {ussd}",
        "sw": "Samahani, hatukuelewa. Tuma MSAADA kupata maagizo au piga {ussd}",
    },
    "stopped": {
        "en": "You will no longer get announcements from Elimu. Send START to get them again.",
        "sw": "Hutapokea tena matangazo ya Elimu. Tuma ANZA kuyapokea tena.",
    },
    "started": {
        "en": "You will get Elimu announcements again. Send STOP to stop them.",
        "sw": "Utapokea matangazo ya Elimu tena. Tuma SITISHA kuyasitisha.",
    },
    "results_need_exam": {
        "en": "For results, start with the exam: KCSE {number} <one of the candidate's names> (or KCPE, KPSEA, "
              "KJSEA instead of KCSE).",
        "sw": "Kwa matokeo, anza na mtihani: KCSE {number} <jina moja la mtahiniwa> (au KCPE, KPSEA, KJSEA badala "
              "ya KCSE).",
    },
    "results_usage_assessment": {  # KPSEA, KJSEA: assessment numbers, whose format KNEC has not published
        "en": "For results send: {exam} <assessment no> <one of the learner's names>",
        "sw": "Kwa matokeo tuma: {exam} <nambari ya tathmini> <jina moja la mwanafunzi>",
    },
    "results_usage": {
        "en": "For results send: {exam} <index no> <one of the candidate's names>, e.g. {exam} {example} Wanjiku",
        "sw": "Kwa matokeo tuma: {exam} <nambari ya mtihani> <jina moja la mtahiniwa>, mfano {exam} {example} Wanjiku",
    },
    "results_index_length": {  # depends only on the length typed: tells nothing of any real number
        "en": "A {exam} index number has {digits} digits; you sent {count}. Send: {exam} <{digits}-digit index> <name>",
        "sw": "Nambari ya mtihani ya {exam} ina tarakimu {digits}; ulituma {count}. Tuma: {exam} <nambari ya "
              "tarakimu {digits}> <jina>",
    },
    # "results_no_match(_latest)" and "results_need_name" (and "results_embargoed" to a sender who may not see the
    # result) never depend on whether the number exists: a reply must not tell that a number is real.
    "results_no_match": {
        "en": "No {exam}{year} results were found for {number} with that name. Check the number and send "
              "one of the candidate's names.",
        "sw": "Hakuna matokeo ya {exam}{year} ya {number} kwa jina hilo. Hakikisha nambari kisha utume jina moja "
              "la mtahiniwa.",
    },
    "results_no_match_latest": {  # no year asked: an index is reused every year (centre code + serial)
        "en": "No {exam} results were found for {number} with that name. Check the number and the name; for an "
              "earlier year, add it: {exam} {number} <name> <year>",
        "sw": "Hakuna matokeo ya {exam} ya {number} kwa jina hilo. Hakikisha nambari na jina; kwa mwaka wa awali, "
              "uongeze: {exam} {number} <jina> <mwaka>",
    },
    "results_embargoed": {
        "en": "{exam} {year} results are not yet released. Please try again after the official release.",
        "sw": "Matokeo ya {exam} {year} bado hayajatolewa. Tafadhali jaribu tena baada ya kutolewa rasmi.",
    },
    "results_need_name": {
        "en": "For privacy, results need one of the candidate's names: {exam} {number} <name>. Verified "
              "guardians may leave it out: dial {ussd} to verify.",
        "sw": "Kwa faragha, matokeo yanahitaji jina moja la mtahiniwa: {exam} {number} <jina>. Mzazi "
              "aliyethibitishwa anaweza kuliacha: piga {ussd} kuthibitisha.",
    },
    "results_name_short": {  # told from the names typed alone (sms_replies.short_names_only)
        "en": "For privacy, send one of the candidate's names in full ({letters} letters or more): {exam} {number} "
              "<name>. Initials and short names (Wa, Mo) count only beside one.",
        "sw": "Kwa faragha, tuma jina kamili la mtahiniwa (herufi {letters} au zaidi): {exam} {number} <jina>. "
              "Herufi za kwanza na majina mafupi (Wa, Mo) hukubaliwa tu pamoja nalo.",
    },
    "results_limited": {
        "en": "Too many results requests from this number. Please try again later.",
        "sw": "Maombi mengi mno ya matokeo kutoka nambari hii. Tafadhali jaribu tena baadaye.",
    },
    "results_misses_limited": {  # sms_replies.MISSES_PER_DAY: the same whatever the number
        "en": "Too many results requests with a name that did not match from this number. Please try again "
              "tomorrow, or dial {ussd} to verify as the learner's guardian.",
        "sw": "Maombi mengi mno ya matokeo kwa jina lisilolingana kutoka nambari hii. Tafadhali jaribu tena kesho, "
              "au piga {ussd} kuthibitishwa kama mzazi wake.",
    },
    "too_many": {
        "en": "Too many messages from this number. Please wait a minute before sending again.",
        "sw": "Jumbe nyingi mno kutoka nambari hii. Tafadhali subiri dakika moja kabla ya kutuma tena.",
    },
    "results": {
        "en": "{exam} {year} {number}: Mean grade {mean}{points}. {subjects}",
        "sw": "{exam} {year} {number}: Wastani {mean}{points}. {subjects}",
    },
    "results_levels": {  # KPSEA, KJSEA (CBC): performance levels, not grades (a CBC "grade" is the class)
        "en": "{exam} {year} {number}: Mean level {mean}{points}. {subjects}",
        "sw": "{exam} {year} {number}: Wastani {mean}{points}. {subjects}",
    },
    # A KNEC status mark in place of the mean grade, explained (a parent does not know what "Y" means).
    "results_mark_X": {"en": " (absent)", "sw": " (hakufanya mtihani)"},
    "results_mark_Y": {"en": " (cancelled: exam irregularity; ask the school)",
                       "sw": " (yamefutwa kwa ukiukaji wa kanuni za mtihani; uliza shule)"},
    "results_mark_W": {"en": " (withheld by KNEC; ask the school)", "sw": " (yamezuiliwa na KNEC; uliza shule)"},
    "results_mark_P": {"en": " (pending)", "sw": " (bado yanasubiriwa)"},
    "results_points": {"en": " ({points} pts)", "sw": " (pointi {points})"},
    "results_marks": {"en": " ({points} marks)", "sw": " (alama {points})"},  # KCPE: marks out of 500
    "upi_inactive": {
        "en": "UPIs are sent only to activated accounts. Dial {ussd} to activate yours.",
        "sw": "UPI hutumwa tu kwa akaunti zilizofunguliwa. Piga {ussd} kufungua akaunti yako.",
    },
    "upi_unverified": {
        "en": "UPIs are sent only for learners verified on this number. Dial {ussd} and choose 1 to add yours.",
        "sw": "UPI hutumwa tu kwa wanafunzi waliothibitishwa kwa nambari hii. Piga {ussd} kisha uchague 1 kuwaongeza wako.",
    },
    "upi_none": {
        "en": "No learners are linked to this number. Ask the learner's school to add your number, then dial {ussd}",
        "sw": "Hakuna wanafunzi waliounganishwa na nambari hii. Omba shule ya mwanafunzi iongeze nambari yako, kisha piga {ussd}",
    },
    "upi_list": {"en": "UPI: {items}", "sw": "UPI: {items}"},
    "upi_more": {"en": " (+{count} more: dial {ussd})", "sw": " (+{count} zaidi: piga {ussd})"},
}


def text(key: str, language: str, **values: object) -> str:
    """The text ``key`` in ``language`` (English when unknown), filled with ``values``."""
    variants = TEXTS[key]
    return variants.get(language, variants["en"]).format(**values)
