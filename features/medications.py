"""Drug classes of the treatment fields read from ingredient (generic) names, for medicines sent
without an ATC code (a Korean HIS coding in HIRA EDI or KPIS KD codes, KR Core 2.0).

The classes mirror the ATC prefixes `features.fhir` reads (C02, C03, C07, C08, C09 antihypertensive;
A10 diabetes; C10AA / C10BA / C10BX statin; any other C10 lipid-modifying agent: treated
dyslipidemia, which the record calls `history_dyslipidemia`), so a medicine counts the same whether it
comes with an ATC code or only its name. A name is split into words (a combination product "amlodipine/valsartan",
"sitagliptin and metformin", "암로디핀베실산염+발사르탄" is one word per ingredient), and each word is
matched on its own: an English word exactly or by a suffix that only that class uses; a Korean word
by containing a known name, since Korean names carry the salt glued on (로사르탄칼륨).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

ANTIHYPERTENSIVE = "on_antihypertensive"
DIABETES = "on_diabetes_medication"
STATIN = "on_statin"
# Ezetimibe, fibrates, PCSK9 inhibitors, bile acid sequestrants: dyslipidemia treated, though not
# with a statin ("history_dyslipidemia: diagnosed or treated", contract section 1).
LIPID_LOWERING = "history_dyslipidemia"

_ENGLISH: dict[str, frozenset[str]] = {
    ANTIHYPERTENSIVE: frozenset(
        {
            # CCBs (C08): the -dipine suffix covers the dihydropyridines; these are the others.
            "diltiazem",
            "verapamil",
            # Diuretics (C03), thiazide and thiazide-like first.
            "hydrochlorothiazide",
            "chlorthalidone",
            "chlortalidone",
            "indapamide",
            "chlorothiazide",
            "metolazone",
            "furosemide",
            "torasemide",
            "torsemide",
            "bumetanide",
            "spironolactone",
            "eplerenone",
            "amiloride",
            "triamterene",
            # Centrally acting and alpha blockers (C02).
            "clonidine",
            "methyldopa",
            "doxazosin",
            "prazosin",
            "terazosin",
            # Beta blockers without the -olol suffix (C07).
            "carvedilol",
            "labetalol",
            "sotalol",
            # Renin inhibitor (C09XA).
            "aliskiren",
        }
    ),
    DIABETES: frozenset(
        {
            "metformin",
            "glimepiride",
            "gliclazide",
            "glipizide",
            "glibenclamide",
            "glyburide",
            "gliquidone",
            "repaglinide",
            "nateglinide",
            "mitiglinide",
            "acarbose",
            "voglibose",
            "miglitol",
            "insulin",
            "glargine",
            "detemir",
            "degludec",
            "lispro",
            "glulisine",
            # GLP-1 agonists by name: "-glutide" also ends GLP-2 analogues (teduglutide, A16).
            "liraglutide",
            "dulaglutide",
            "semaglutide",
            "albiglutide",
            "exenatide",
            "lixisenatide",
            "efpeglenatide",
            "tirzepatide",
        }
    ),
    # By name, not "-statin": nystatin, cilastatin, somatostatin, ulinastatin and pentostatin are not.
    STATIN: frozenset(
        {
            "atorvastatin",
            "rosuvastatin",
            "simvastatin",
            "pravastatin",
            "pitavastatin",
            "fluvastatin",
            "lovastatin",
            "cerivastatin",
        }
    ),
    # Not niacin or omega-3 by name: both are sold as supplements too (their C10 ATC codes count).
    LIPID_LOWERING: frozenset(
        {
            "ezetimibe",
            "gemfibrozil",
            "fenofibric",
            "evolocumab",
            "alirocumab",
            "inclisiran",
            "cholestyramine",
            "colestyramine",
            "colesevelam",
            "colestipol",
            "bempedoic",
            "lomitapide",
            "acipimox",
        }
    ),
}
# Suffixes that only the class uses (each checked against the INN stems of WHO's list).
_SUFFIXES: dict[str, tuple[str, ...]] = {
    ANTIHYPERTENSIVE: ("sartan", "pril", "dipine", "olol"),
    DIABETES: ("gliptin", "gliflozin", "glitazone"),
    LIPID_LOWERING: ("fibrate",),
}
# Beta blockers sold in Korea almost only as eye drops for glaucoma (ATC S01ED): their name alone
# would call an eye drop an antihypertensive.
_OPHTHALMIC = frozenset({"timolol", "betaxolol", "carteolol", "levobunolol", "metipranolol"})

_KOREAN: dict[str, tuple[str, ...]] = {
    ANTIHYPERTENSIVE: (
        # ACE inhibitors
        "캅토프릴",
        "에날라프릴",
        "리시노프릴",
        "라미프릴",
        "페린도프릴",
        "퀴나프릴",
        "베나제프릴",
        "포시노프릴",
        "실라자프릴",
        "이미다프릴",
        "모엑시프릴",
        "트란돌라프릴",
        "조페노프릴",
        # ARBs
        "사르탄",
        # CCBs
        "암로디핀",
        "니페디핀",
        "펠로디핀",
        "레르카니디핀",
        "실니디핀",
        "베니디핀",
        "라시디핀",
        "니카르디핀",
        "니솔디핀",
        "이스라디핀",
        "에포니디핀",
        "바르니디핀",
        "마니디핀",
        "아젤니디핀",
        "니모디핀",
        "딜티아젬",
        "베라파밀",
        # Beta blockers
        "아테놀롤",
        "비소프롤롤",
        "메토프롤롤",
        "프로프라놀롤",
        "네비볼롤",
        "카르베딜롤",
        "라베탈롤",
        "나도롤",
        "셀리프롤롤",
        "아세부톨롤",
        "핀돌롤",
        "베반톨롤",
        "에스몰롤",
        "아로티놀롤",
        "소탈롤",
        # Diuretics
        "히드로클로로티아지드",
        "하이드로클로로티아지드",
        "클로르탈리돈",
        "인다파미드",
        "클로로티아지드",
        "메톨라존",
        "푸로세미드",
        "토라세미드",
        "스피로노락톤",
        "에플레레논",
        "아밀로리드",
        "트리암테렌",
        # Centrally acting, alpha blockers, renin inhibitor
        "클로니딘",
        "메틸도파",
        "독사조신",
        "프라조신",
        "테라조신",
        "알리스키렌",
    ),
    DIABETES: (
        "메트포르민",
        "메트포민",
        "글리메피리드",
        "글리클라지드",
        "글리피지드",
        "글리벤클라미드",
        "레파글리니드",
        "나테글리니드",
        "미티글리니드",
        "글립틴",
        "글리플로진",
        "글리타존",
        "아카보스",
        "보글리보스",
        "미글리톨",
        "인슐린",
        "리라글루티드",
        "둘라글루티드",
        "세마글루티드",
        "엑세나티드",
        "릭시세나티드",
        "에페글레나타이드",
        "티르제파타이드",
        "터제파타이드",
    ),
    STATIN: (
        "아토르바스타틴",
        "로수바스타틴",
        "심바스타틴",
        "프라바스타틴",
        "피타바스타틴",
        "플루바스타틴",
        "로바스타틴",
    ),
    LIPID_LOWERING: (
        "에제티미브",
        "피브레이트",
        "페노피브르산",
        "젬피브로질",
        "에볼로쿠맙",
        "알리로쿠맙",
        "인클리시란",
        "콜레스티라민",
        "콜레세벨람",
    ),
}
_KOREAN_OPHTHALMIC = ("티몰롤", "베탁솔롤", "카르테올롤", "레보부놀롤")

# Latin letters or Hangul syllables: digits, "/", "+", "-", brackets and spaces all split words.
_WORD = re.compile(r"[a-z]+|[\uac00-\ud7a3]+")


def _word_classes(word: str) -> set[str]:
    if word.isascii():
        if word in _OPHTHALMIC:
            return set()
        return {
            name
            for name in (ANTIHYPERTENSIVE, DIABETES, STATIN, LIPID_LOWERING)
            if word in _ENGLISH[name] or word.endswith(_SUFFIXES.get(name, ()))
        }
    if any(eye in word for eye in _KOREAN_OPHTHALMIC):
        return set()
    return {name for name, stems in _KOREAN.items() if any(stem in word for stem in stems)}


def classes_of_names(names: Iterable[str]) -> set[str]:
    """The treatment fields the ingredient or product names give (empty: none recognised)."""
    found: set[str] = set()
    for name in names:
        text = unicodedata.normalize("NFKC", name).lower()
        for word in _WORD.findall(text):
            found |= _word_classes(word)
    return found
