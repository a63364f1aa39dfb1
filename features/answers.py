"""Answers as systems print them: a text answer read whatever its spelling ("음성(−)", "（－）",
"Neg."), and the urine dipstick's grades in the words and signs labs use. Read by the FHIR reader
(valueString, a code's display) and by the file reader (a dipstick column written as signs)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

# Dipstick answers to the record's code 1 (-) .. 6 (4+).
DIPSTICK_TEXT = {
    "-": 1,
    "neg": 1,
    "negative": 1,
    "음성": 1,
    "none": 1,
    "nil": 1,
    "±": 2,
    "+/-": 2,
    "+-": 2,
    "trace": 2,
    "tr": 2,
    "미량": 2,
    "약양성": 2,
    "1+": 3,
    "+": 3,
    "+1": 3,
    "양성(1+)": 3,
    "2+": 4,
    "++": 4,
    "+2": 4,
    "양성(2+)": 4,
    "3+": 5,
    "+++": 5,
    "+3": 5,
    "양성(3+)": 5,
    "4+": 6,
    "++++": 6,
    "+4": 6,
    "양성(4+)": 6,
    # Positive without a grade: at least 1+ (the lowest grade it can be).
    "양성": 3,
    "positive": 3,
    "pos": 3,
}

_DASHES = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2010": "-", "\u2011": "-"})


def text_answer(label: str, text: Mapping[str, int | None]) -> tuple[int | None] | None:
    """(code,) of a text answer, else None: the whole text, or a text with a parenthesis
    ("약양성(±)", "음성 (-)") whose parts each name the same answer; a part this service does not
    read ("흡연(과거)": "과거" alone) leaves the whole unread rather than half-read."""
    # Full-width forms ("（－）") as their plain letters, a minus sign or a dash as "-", "Neg." as "neg".
    plain = unicodedata.normalize("NFKC", label).translate(_DASHES).strip().rstrip(".")
    whole = re.sub(r"\s*([()])\s*", r"\1", " ".join(plain.split())).lower()  # "양성 (2+)" is "양성(2+)"
    if whole in text:
        return (text[whole],)
    parts = [p.strip() for p in re.split(r"[()]", whole) if p.strip()]
    if not parts or any(p not in text for p in parts):
        return None  # "(±)" alone is its sign; "흡연(과거)" has parts that disagree
    codes = {text[p] for p in parts}
    return (codes.pop(),) if len(codes) == 1 else None
