"""Text catalogues per language; screens ask for texts by key, never by literal."""

from __future__ import annotations

from . import en, sw

CATALOGUES: dict[str, dict[str, str]] = {"en": en.TEXTS, "sw": sw.TEXTS}
LANGUAGES: tuple[str, ...] = ("en", "sw")
DEFAULT_LANGUAGE = "en"
# Language names as shown on the language screen, each in its own language.
LANGUAGE_NAMES: dict[str, str] = {"en": "English", "sw": "Kiswahili"}


def text(language: str, key: str, **values: object) -> str:
    """The text ``key`` in ``language`` (English when unknown), formatted with ``values``."""
    catalogue = CATALOGUES.get(language, CATALOGUES[DEFAULT_LANGUAGE])
    return catalogue[key].format(**values)
