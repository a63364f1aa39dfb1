"""History fields read from the words of a diagnosis, for a FHIR Condition sent without a code this
service knows (text only, a local code system, a SNOMED CT code outside `features.fhir`'s table).

Conservative on purpose: a text counts only when it is made of the names below and a few words
that leave their meaning ("essential", "type 2", "old", "history of", "without complications",
"ischemic", "on statin"; `_ENGLISH_FILLER`, `_KOREAN_FILLER`), with no other sign than
parentheses, commas, semicolons, ampersands, full stops, slashes and apostrophes. Anything else may
change what the name means: a negation or blank ("no", "none", "(-)", "무", "없음"), a doubt
("suspected", "?", "의증", "r/o"), someone else ("mother", "모친", "family history"), a test
("screening", "검사"), a label and a value ("Hypertension: none") or a qualifier naming another
disease ("pulmonary hypertension", "heat stroke", "폐고혈압"). Such a text gives nothing and a
warning: a known condition missed is said in the warnings, while a condition read where there is
none would silently drop an outcome. Common abbreviations (HTN, DM, T2DM, MI, CVA, CAD) are names.

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
    "history_hypertension": ("hypertension", "htn", "high blood pressure", "고혈압"),
    "history_diabetes": ("diabetes", "diabetes mellitus", "dm", "niddm", "iddm", "당뇨"),
    "history_dyslipidemia": (
        "dyslipidemia",
        "dyslipidaemia",
        "hyperlipidemia",
        "hyperlipidaemia",
        "hypercholesterolemia",
        "hypercholesterolaemia",
        "high cholesterol",
        "이상지질혈",
        "고지혈",
        "고콜레스테롤혈",
    ),
    "history_ckd": (
        "chronic kidney disease",
        "ckd",
        "chronic renal failure",
        "chronic renal insufficiency",
        "chronic renal disease",
        "end stage renal disease",
        "esrd",
        "만성신장",
        "만성콩팥",
        "만성신부전",
    ),
    "history_stroke": ("stroke", "cerebral infarction", "cerebrovascular accident", "cva", "뇌졸중", "뇌경색"),
    "history_heart_disease": (
        "myocardial infarction",
        "mi",
        "ami",
        "stemi",
        "nstemi",
        "heart attack",
        "cad",
        "ihd",
        "ischemic heart disease",
        "ischaemic heart disease",
        "coronary artery disease",
        "coronary heart disease",
        "angina",
        "심근경색",
        "협심",
    ),
}

# Words that may stand beside a name and leave its meaning: every other word makes the text doubtful.
_ENGLISH_FILLER = frozenset(
    {
        "essential",
        "primary",
        "secondary",
        "benign",
        "type",
        "non",
        "insulin",
        "dependent",
        "uncomplicated",
        "controlled",
        "uncontrolled",
        "chronic",
        "acute",
        "old",
        "stable",
        "unstable",
        "pectoris",
        "mixed",
        "pure",
        "familial",
        "disease",
        "disorder",
        "unspecified",
        "nos",
        "history",
        "hx",
        "of",
        "known",
        "diagnosed",
        "treated",
        "treatment",
        "on",
        "with",
        "and",
        "i",
        "ii",
        "1",
        "2",
        # kind, course and care of the same disease
        "ischemic",
        "ischaemic",
        "hemorrhagic",
        "haemorrhagic",
        "embolic",
        "thrombotic",
        "lacunar",
        "post",
        "s",
        "p",
        "t",  # T2DM reads as t, 2, dm
        "status",
        "after",
        "sequelae",
        "late",
        "effect",
        "effects",
        "well",
        "statin",
        "medication",
        "medications",
        "tablets",
        # treatment of the same heart disease ("Old MI, s/p PCI")
        "pci",
        "ptca",
        "cabg",
        "stent",
        "stents",
        "stenting",
        # stage and care of the same kidney disease ("CKD stage 3a", "ESRD on hemodialysis")
        "stage",
        "3",
        "4",
        "5",
        "a",
        "b",
        "g",
        "dialysis",
        "hemodialysis",
        "haemodialysis",
        "peritoneal",
        "hd",
    }
)
_KOREAN_FILLER = frozenset(
    {"제", "형", "본태성", "원발성", "이차성", "급성", "만성", "진구성", "안정형", "불안정형", "변이형"}
    | {"진단", "병력", "과거력", "후유증", "허혈성", "출혈성", "약", "복용", "복용중", "치료", "치료중"}
    | {"스텐트", "시술", "시술후"}
    | {"기", "투석", "혈액투석", "복막투석", "투석중"}
)
# What may be glued before and after a Korean name and leave its meaning.
_KOREAN_BEFORE = ("", "본태성", "원발성", "이차성", "급성", "만성", "진구성", "형", "안정형", "불안정형", "변이형")
_KOREAN_AFTER = ("", "병", "증")
# A phrase of ICD-10 displays ("... without complications") that is no negation of the disease.
_HARMLESS = re.compile(r"\bwithout (?:mention of )?complications?\b")
_WORD = re.compile(r"[a-z]+|[\uac00-\ud7a3]+|[0-9]+")
# A hyphen inside a word ("type-2", "non-insulin-dependent") is a space; any other sign but these
# (a colon, a minus, a plus, a question mark) may say something about the name: doubtful.
_INNER_HYPHEN = re.compile(r"(?<=[a-z0-9\uac00-\ud7a3])-(?=[a-z0-9\uac00-\ud7a3])")
_OTHER_SIGN = re.compile(r"[^a-z0-9\uac00-\ud7a3\s.,;&()/']")


def _english(words: list[str], used: list[bool]) -> set[str]:
    """The fields English names among `words` name; marks the words they cover in `used`."""
    found = set()
    for name, names in CONDITION_NAMES.items():
        for term in names:
            parts = term.split(" ")
            if not parts[0].isascii():
                continue
            n = len(parts)
            for i in range(len(words) - n + 1):
                if words[i : i + n] == parts:
                    found.add(name)
                    used[i : i + n] = [True] * n
    return found


def _korean(words: list[str], used: list[bool]) -> set[str]:
    """The fields Korean names (with their glued qualifiers) among `words` name; marks them in `used`."""
    found = set()
    for k, word in enumerate(words):
        if word.isascii():
            continue
        for name, names in CONDITION_NAMES.items():
            for term in names:
                if term.isascii():
                    continue
                if any(word == f"{before}{term}{after}" for before in _KOREAN_BEFORE for after in _KOREAN_AFTER):
                    found.add(name)
                    used[k] = True
    return found


class ConditionText(NamedTuple):
    """What the words of a Condition say: `fields` read with certainty, or `doubtful` when a name is
    there but something in the texts (a negation, a doubt, a qualifier) keeps it from counting."""

    fields: frozenset[str]
    doubtful: bool
    mentioned: frozenset[str] = frozenset()  # every field a name was found for, doubtful or not


# Words that name a relative or a family history. In a Condition they say the disease is someone
# else's (doubtful); in a FamilyMemberHistory condition, whose subject is a relative, they are
# harmless ("Family history of diabetes", "Mother: stroke", "당뇨병 가족력").
_FAMILY_WORDS = frozenset(
    {"family", "history", "hx", "fh", "of", "in", "relative", "relatives", "maternal", "paternal"}
    | {"mother", "father", "parent", "parents", "brother", "sister", "sibling", "siblings", "son", "daughter"}
    | {"grandmother", "grandfather", "grandparent", "grandparents", "aunt", "uncle", "cousin"}
    | {"가족력", "가족", "모친", "부친", "어머니", "아버지", "엄마", "아빠", "부모", "형제", "자매", "남매"}
    | {"조부", "조모", "외조부", "외조모", "할머니", "할아버지", "외할머니", "외할아버지", "친척", "아들", "딸"}
)


def history_of_names(texts: Iterable[str], family: bool = False) -> ConditionText:
    """The history fields the texts (Condition.code.text and coding displays) name with certainty;
    none at all when any of them names one with a negation, a doubt or a qualifier. `family`: the
    texts are a relative's condition (FamilyMemberHistory), so words naming a relative or a family
    history, and a colon after one ("Mother: stroke"), are harmless."""
    fields: set[str] = set()
    mentioned: set[str] = set()
    doubtful = False
    harmless = _ENGLISH_FILLER | _KOREAN_FILLER | (_FAMILY_WORDS if family else frozenset())
    for raw in texts:
        text = _INNER_HYPHEN.sub(" ", _HARMLESS.sub(" ", unicodedata.normalize("NFKC", raw).lower()))
        if family:
            text = text.replace(":", " ")
        words = _WORD.findall(text)
        used = [False] * len(words)
        named = _english(words, used) | _korean(words, used)
        if not named:
            continue
        mentioned |= named
        others = [w for w, u in zip(words, used, strict=True) if not u]
        if _OTHER_SIGN.search(text) or any(w not in harmless for w in others):
            doubtful = True  # nothing counts, but every text is still read for what it mentions
        fields |= named
    if doubtful:
        return ConditionText(frozenset(), True, frozenset(mentioned))
    return ConditionText(frozenset(fields), False, frozenset(mentioned))
