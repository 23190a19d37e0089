"""Small text helpers shared by the CLI and the app: counts with the right plural, and the
natural order of file names.
"""

from __future__ import annotations

import re

_DIGITS = re.compile(r"(\d+)")

# Nouns whose plural is not the noun + "s".
_IRREGULAR = {"entry": "entries", "class": "classes", "box": "boxes", "match": "matches",
              "category": "categories", "anchor": "anchors", "proposal": "proposals",
              "epoch": "epochs"}


def plural(noun: str) -> str:
    """The plural of ``noun`` (English): "box" -> "boxes", "entry" -> "entries", "image" ->
    "images"."""
    if noun in _IRREGULAR:
        return _IRREGULAR[noun]
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def count(number: int, noun: str, plural_form: str | None = None) -> str:
    """``number`` and ``noun``, singular for exactly one: ``count(1, "box")`` -> "1 box",
    ``count(0, "image")`` -> "0 images", ``count(2, "file")`` -> "2 files"."""
    if number == 1:
        return f"{number} {noun}"
    return f"{number} {plural_form or plural(noun)}"


def natural_key(text: str) -> tuple:
    """A sort key that orders digit runs by their value, case-insensitively, as file
    managers do: raccoon-1, raccoon-2, raccoon-10, raccoon-100 (not 1, 10, 100, 2)."""
    text = str(text)
    parts = _DIGITS.split(text)
    key = tuple((0, int(part)) if index % 2 else (1, part.casefold())
                for index, part in enumerate(parts))
    return (*key, (2, text))  # ties (file-01 and file-1, Cat and cat): by the text itself
