"""History fields read from the words of a diagnosis, for a FHIR Condition sent without a code this
service knows (text only, a local code system, a SNOMED CT code outside `features.fhir`'s table).

Conservative on purpose: a name counts only when nothing else in the text could change what it
means. A text with a negation or a doubt ("no", "denies", "without", "rule out", "negative",
"suspected", "risk of", "screening"), about someone else ("family history", "mother"), or with a
qualifier that names another disease ("pulmonary hypertension", "gestational diabetes", "diabetes
insipidus", "heat stroke", "폐고혈압", "임신성 당뇨") gives nothing: a known condition missed is said
in the warnings, a condition read where there is none would silently drop an outcome.

English names are matched as whole words (a name of several words as consecutive words). Korean
words carry suffixes and prefixes glued on, so a Korean word counts when it is a name, optionally
with 병 or 증 after it and one of a few harmless qualifiers before it (본태성고혈압, 급성심근경색,
제2형당뇨병); any other glued prefix (폐고혈압, 문맥고혈압) gives nothing.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import NamedTuple

# History field -> its common names, English (lower case, words separated by one space) and Korean.
# The one table of condition names: `features.fhir` reads Condition text through it.
CONDITION_NAMES: dict[str, tuple[str, ...]] = {
    "history_hypertension": ("hypertension", "고혈압"),
    "history_diabetes": ("diabetes", "diabetes mellitus", "당뇨"),
    "history_dyslipidemia": (
        "dyslipidemia",
        "dyslipidaemia",
        "hyperlipidemia",
        "hyperlipidaemia",
        "hypercholesterolemia",
        "hypercholesterolaemia",
        "이상지질혈",
        "고지혈",
        "고콜레스테롤혈",
    ),
    "history_stroke": ("stroke", "cerebral infarction", "cerebrovascular accident", "뇌졸중", "뇌경색"),
    "history_heart_disease": (
        "myocardial infarction",
        "ischemic heart disease",
        "ischaemic heart disease",
        "coronary artery disease",
        "coronary heart disease",
        "angina",
        "심근경색",
        "협심",
    ),
}

# English words that make a text unsafe to read: negation, doubt, someone else, or a qualifier
# that turns the name into another disease.
_ENGLISH_STOP = frozenset(
    {
        # negation
        "no",
        "not",
        "never",
        "denies",
        "denied",
        "deny",
        "without",
        "negative",
        "neg",
        "absent",
        "absence",
        "excluded",
        "exclude",
        "excluding",
        "rule",
        "ruled",
        "free",
        # doubt, screening, risk
        "suspected",
        "suspect",
        "suspicion",
        "possible",
        "possibly",
        "probable",
        "probably",
        "likely",
        "unlikely",
        "query",
        "questionable",
        "risk",
        "screening",
        "screen",
        "prevention",
        "prophylaxis",
        "borderline",
        "pre",
        # someone else
        "family",
        "fh",
        "mother",
        "father",
        "parent",
        "parents",
        "sibling",
        "brother",
        "sister",
        "maternal",
        "paternal",
        # another disease of the same name
        "pulmonary",
        "portal",
        "intracranial",
        "ocular",
        "intraocular",
        "gestational",
        "pregnancy",
        "white",
        "insipidus",
        "heat",
        "volume",
        "ludwig",
        "vincent",
        "abdominal",
        "intestinal",
        "neonatal",
    }
)
# Korean: found anywhere in the text (they glue onto other words: 병력없음).
_KOREAN_STOP = (
    "없",
    "아님",
    "아니",
    "부정",
    "음성",
    "의증",
    "의심",
    "배제",
    "가족",
    "위험",
    "선별",
    "전단계",
    "경계",
    "임신",
    "예방",
)
# What may be glued before and after a Korean name and leave its meaning.
_KOREAN_BEFORE = ("", "본태성", "원발성", "이차성", "급성", "만성", "진구성", "형", "안정형", "불안정형", "변이형")
_KOREAN_AFTER = ("", "병", "증")
# A phrase of ICD-10 displays ("... without complications") that is no negation of the disease.
_HARMLESS = re.compile(r"\bwithout (?:mention of )?complications?\b")
_WORD = re.compile(r"[a-z]+|[\uac00-\ud7a3]+|[0-9]+|\?")
_RULE_OUT = re.compile(r"\br/o\b")


def _english(words: list[str]) -> set[str]:
    found = set()
    for name, names in CONDITION_NAMES.items():
        for term in names:
            parts = term.split(" ")
            if not parts[0].isascii():
                continue
            n = len(parts)
            if any(words[i : i + n] == parts for i in range(len(words) - n + 1)):
                found.add(name)
    return found


def _korean(words: list[str]) -> set[str]:
    found = set()
    for word in words:
        if word.isascii():
            continue
        for name, names in CONDITION_NAMES.items():
            for term in names:
                if term.isascii():
                    continue
                if any(word == f"{before}{term}{after}" for before in _KOREAN_BEFORE for after in _KOREAN_AFTER):
                    found.add(name)
    return found


class ConditionText(NamedTuple):
    """What the words of a Condition say: `fields` read with certainty, or `doubtful` when a name is
    there but something in the texts (a negation, a doubt, a qualifier) keeps it from counting."""

    fields: frozenset[str]
    doubtful: bool


def history_of_names(texts: Iterable[str]) -> ConditionText:
    """The history fields the texts (Condition.code.text and coding displays) name with certainty;
    none at all when any of them names one with a negation, a doubt or a qualifier."""
    fields: set[str] = set()
    for raw in texts:
        text = unicodedata.normalize("NFKC", raw).lower()
        words = _WORD.findall(_HARMLESS.sub(" ", text))
        named = _english(words) | _korean(words)
        if not named:
            continue
        hangul = [w for w in words if not w.isascii()]
        if (
            any(w in _ENGLISH_STOP or w == "?" for w in words)
            or any(stop in w for w in hangul for stop in _KOREAN_STOP)
            or _RULE_OUT.search(text) is not None
        ):
            return ConditionText(frozenset(), True)
        fields |= named
    return ConditionText(frozenset(fields), False)
