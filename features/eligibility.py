"""Who is still at risk of a first diagnosis of each outcome (contract section 2).

Eligibility is a fact about a person at a checkup, not about a model: the generator uses it to
leave labels empty, training to choose rows, and serving to say why an outcome does not apply.

A known condition is never predicted as a new one, so a checkup is judged together with the same
person's EARLIER checkups present in the same input (earlier rows of a file, earlier checkups of a
request, earlier Observations of a FHIR bundle):

* a history or medication flag recorded at any earlier checkup still holds (a diagnosis does not
  heal, and a missing answer this time does not undo it);
* a disease-defining measure missing this time (the lipid panel is drawn only every fourth year;
  blood pressure, glucose, creatinine or the urine dipstick may be missed) falls back to the
  person's last earlier measurement of it; if that one was already in the disease range the
  outcome does not apply, and the reason names that checkup's date.

Rows are ordered per person by exam date exactly as `features.derive.longitudinal_features` does
(stable for same-day rows); rows without `person_id` or `exam_date` have no history.

Everything is vectorised: one record and a million rows take the same code path, with no Python
loop over rows. Synthetic cohort generation, which advances people wave by wave, keeps the
per-person "last earlier" state itself (`History.empty` / `History.advance`) instead of re-sorting
the growing frame, and judges each wave with the same `applicability`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from features.cutoffs import (
    DBP_HYPERTENSION,
    EGFR_CKD,
    GLUCOSE_DIABETES,
    HDL_LOW,
    LDL_HIGH,
    SBP_HYPERTENSION,
    TC_HIGH,
    TG_HIGH,
    URINE_PROTEIN_1PLUS,
    number,
)
from features.derive import HISTORY_KEYS, PANEL_MARKER, Columns, as_columns, egfr_ckd_epi_2021, inputs_of
from features.schema import BY_NAME, OUTCOMES, label_column

# Flags (0/1) that make an outcome not applicable, per outcome, in the order reasons are given.
FLAGS: dict[str, tuple[str, ...]] = {
    "cvd": ("history_stroke", "history_heart_disease"),
    "diabetes": ("history_diabetes", "on_diabetes_medication"),
    "hypertension": ("history_hypertension", "on_antihypertensive"),
    "dyslipidemia": ("history_dyslipidemia", "on_statin"),
    "ckd": ("history_ckd",),
}
ALL_FLAGS: tuple[str, ...] = tuple(f for o in OUTCOMES for f in FLAGS[o])

# Measures that are drawn together: when a group was not recorded at this checkup (`RECORDED_BY`),
# the whole group is taken from the person's last earlier checkup that recorded it (a panel is
# judged as the panel it was; half of one checkup's lipids and half of another's would be no real
# panel). This checkup's own values are judged whatever else it lacks.
GROUPS: dict[str, tuple[str, ...]] = {
    "glucose": ("fasting_glucose",),
    "bp": ("sbp", "dbp"),
    "lipids": ("total_cholesterol", "ldl", "triglycerides", "hdl"),
    "creatinine": ("egfr",),
    "urine": ("urine_protein",),
}
_GROUP_OF: dict[str, str] = {f: g for g, fs in GROUPS.items() for f in fs}
# What says a checkup recorded a group: any of its fields, but a lipid panel only by its marker
# (`features.derive.PANEL_MARKER`), as the carried lipids judge it.
RECORDED_BY: dict[str, tuple[str, ...]] = {**GROUPS, "lipids": (PANEL_MARKER,)}

# Record columns an EARLIER checkup must keep for eligibility of later ones: what `judged_values`
# reads (eGFR through the columns it is computed from). A streaming scorer that keeps only part of
# each person's past keeps at least these, next to `features.derive.HISTORY_INPUTS`.
HISTORY_INPUTS: tuple[str, ...] = tuple(
    dict.fromkeys(HISTORY_KEYS + ALL_FLAGS + tuple(c for fs in GROUPS.values() for f in fs for c in inputs_of(f)))
)

# Value rules: outcome -> (reason key, measured field, direction, cut-off), in reason order.
RULES: dict[str, tuple[tuple[str, str, str, float], ...]] = {
    "cvd": (),
    "diabetes": (("fasting_glucose", "fasting_glucose", ">=", GLUCOSE_DIABETES),),
    "hypertension": (("bp", "sbp", ">=", SBP_HYPERTENSION), ("bp", "dbp", ">=", DBP_HYPERTENSION)),
    "dyslipidemia": (
        ("total_cholesterol", "total_cholesterol", ">=", TC_HIGH),
        ("ldl", "ldl", ">=", LDL_HIGH),
        ("triglycerides", "triglycerides", ">=", TG_HIGH),
        ("hdl", "hdl", "<", HDL_LOW),
    ),
    "ckd": (("egfr", "egfr", "<", EGFR_CKD), ("urine_protein", "urine_protein", ">=", URINE_PROTEIN_1PLUS)),
}
assert tuple(FLAGS) == tuple(RULES) == OUTCOMES

# Each outcome's defining measures as record fields (eGFR is read from serum creatinine; sex and age
# only scale it): a what-if that moves one of them mostly restates the definition (glucose 99
# "prevents" diabetes defined as glucose >= 126).
_MEASURED_FROM: dict[str, str] = {"egfr": "serum_creatinine"}
DEFINING_FIELDS: dict[str, frozenset[str]] = {
    o: frozenset(_MEASURED_FROM.get(f, f) for _key, f, _direction, _cut in RULES[o]) for o in OUTCOMES if RULES[o]
}

# --------------------------------------------------------------------------------------------
# Reasons, keyed by a stable id: "<outcome>.<key>" about this checkup's own values or answers,
# "<outcome>.<key>.earlier" carried from an earlier checkup whose ISO date fills `{date}`. English
# is what the API returns as `reason` (contract section 2); Korean is rendered from the id.
# Cut-off numbers come from features.cutoffs, never typed twice.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reason:
    """Why an outcome does not apply, in English and Korean (templates; `{date}` where carried)."""

    id: str
    en: str
    ko: str

    def text(self, lang: str, date: str | None = None) -> str:
        template = self.ko if lang == "ko" else self.en
        return template if date is None else template.replace("{date}", date)


def reason_id(outcome: str, key: str, earlier: bool = False) -> str:
    """The id of an outcome's reason `key` (a flag or a RULES key), this checkup's or carried."""
    return f"{outcome}.{key}.earlier" if earlier else f"{outcome}.{key}"


def _recorded(en: str, ko: str) -> tuple[str, str, str, str]:
    """A flag's words now, and carried: the same words naming the checkup that recorded it."""
    return en, ko, f"{en} (recorded at the checkup of {{date}})", f"{ko} ({{date}} 검진에서 기록)"


def _medication(en: str, ko: str) -> tuple[str, str, str, str]:
    """A medicine's words now ("on a statin"), and carried: when it was recorded, not that it is taken
    now (a later checkup may say it was stopped; the treated condition stays known)."""
    return f"on {en}", f"{ko} 복용 중", f"on {en} at the checkup of {{date}}", f"{{date}} 검진에서 {ko} 복용 기록"


_BP = f"{number(SBP_HYPERTENSION)} / {number(DBP_HYPERTENSION)}"
_GLU = number(GLUCOSE_DIABETES)
_PROTEIN = BY_NAME["urine_protein"].codes[URINE_PROTEIN_1PLUS]  # "1+"


def _confirm(en: str, ko: str, en_then: str, ko_then: str, how_en: str, how_ko: str) -> tuple[str, str, str, str]:
    """A reading in a disease range, now and at an earlier checkup, each with what confirms it."""
    return f"{en} ({how_en})", f"{ko} ({how_ko})", f"{en_then} ({how_en})", f"{ko_then} ({how_ko})"


def _lipid(en: str, ko: str, rule: str, cut: float, verb: str = "is") -> tuple[str, str, str, str]:
    """A lipid in the disease range, now and at the last lipid panel."""
    ko_rule = "이상" if rule == ">=" else "미만"
    return (
        f"{en} {rule} {number(cut)} mg/dL {verb} already in the disease range",
        f"{ko} {number(cut)} mg/dL {ko_rule}으로 이미 질환 범위",
        f"{en} {rule} {number(cut)} mg/dL at the last lipid panel ({{date}}) {verb} already in the disease range",
        f"마지막 지질검사({{date}})의 {ko}이 {number(cut)} mg/dL {ko_rule}으로 이미 질환 범위",
    )


# (outcome, key) -> (English, Korean) about this checkup, then (English, Korean) carried.
_WORDS: dict[tuple[str, str], tuple[str, str, str, str]] = {
    ("cvd", "history_stroke"): (
        "history of stroke: not a first event",
        "뇌졸중 과거력이 있어 첫 발생 예측 대상이 아님",
        "history of stroke recorded at the checkup of {date}: not a first event",
        "{date} 검진에서 뇌졸중 과거력이 기록되어 첫 발생 예측 대상이 아님",
    ),
    ("cvd", "history_heart_disease"): (
        "history of heart disease: not a first event",
        "심장병 과거력이 있어 첫 발생 예측 대상이 아님",
        "history of heart disease recorded at the checkup of {date}: not a first event",
        "{date} 검진에서 심장병 과거력이 기록되어 첫 발생 예측 대상이 아님",
    ),
    ("diabetes", "history_diabetes"): _recorded("already diagnosed with diabetes", "이미 당뇨병을 진단받음"),
    ("diabetes", "on_diabetes_medication"): _medication("diabetes medication", "당뇨약"),
    # One reading in a disease range is not yet a diagnosis: the words say what confirms it.
    ("diabetes", "fasting_glucose"): _confirm(
        f"fasting glucose >= {_GLU} mg/dL is already in the diabetes range",
        f"공복혈당 {_GLU} mg/dL 이상으로 이미 당뇨병 범위",
        f"fasting glucose >= {_GLU} mg/dL at the last measurement ({{date}}) is already in the diabetes range",
        f"마지막 측정({{date}})의 공복혈당이 {_GLU} mg/dL 이상으로 이미 당뇨병 범위",
        "confirm with a repeat test or HbA1c",
        "재검 또는 당화혈색소로 확인 필요",
    ),
    ("hypertension", "history_hypertension"): _recorded(
        "already diagnosed with hypertension", "이미 고혈압을 진단받음"
    ),
    ("hypertension", "on_antihypertensive"): _medication("antihypertensive medication", "고혈압약"),
    ("hypertension", "bp"): _confirm(
        f"blood pressure >= {_BP} mmHg (either) is already in the hypertension range",
        f"혈압 {_BP} mmHg 이상(어느 하나)으로 이미 고혈압 범위",
        f"blood pressure >= {_BP} mmHg (either) at the last measurement ({{date}}) is already in the hypertension "
        "range",
        f"마지막 측정({{date}})의 혈압이 {_BP} mmHg 이상(어느 하나)으로 이미 고혈압 범위",
        "confirm with repeated office or home readings",
        "반복 측정 또는 가정혈압으로 확인 필요",
    ),
    ("dyslipidemia", "history_dyslipidemia"): _recorded(
        "already diagnosed with dyslipidemia", "이미 이상지질혈증을 진단받음"
    ),
    ("dyslipidemia", "on_statin"): _medication("a statin", "스타틴"),
    ("dyslipidemia", "total_cholesterol"): _lipid("total cholesterol", "총콜레스테롤", ">=", TC_HIGH),
    ("dyslipidemia", "ldl"): _lipid("LDL cholesterol", "LDL 콜레스테롤", ">=", LDL_HIGH),
    ("dyslipidemia", "triglycerides"): _lipid("triglycerides", "중성지방", ">=", TG_HIGH, verb="are"),
    ("dyslipidemia", "hdl"): _lipid("HDL cholesterol", "HDL 콜레스테롤", "<", HDL_LOW),
    ("ckd", "history_ckd"): _recorded("already diagnosed with chronic kidney disease", "이미 만성콩팥병을 진단받음"),
    # KDIGO: CKD is an abnormality that lasts more than three months.
    ("ckd", "egfr"): _confirm(
        f"eGFR < {number(EGFR_CKD)} mL/min/1.73m2 is already in the CKD range",
        f"eGFR {number(EGFR_CKD)} mL/min/1.73m² 미만으로 이미 만성콩팥병 범위",
        f"eGFR < {number(EGFR_CKD)} mL/min/1.73m2 at the last creatinine test ({{date}}) is already in the CKD range",
        f"마지막 크레아티닌 검사({{date}})의 eGFR이 {number(EGFR_CKD)} mL/min/1.73m² 미만으로 이미 만성콩팥병 범위",
        "CKD if it lasts over 3 months: repeat the test and check albuminuria",
        "3개월 넘게 지속되면 만성콩팥병: 재검 및 알부민뇨 확인 필요",
    ),
    ("ckd", "urine_protein"): _confirm(
        f"urine protein >= {_PROTEIN} is already in the CKD range",
        f"요단백 {_PROTEIN} 이상으로 이미 만성콩팥병 범위",
        f"urine protein >= {_PROTEIN} at the last urine test ({{date}}) is already in the CKD range",
        f"마지막 소변검사({{date}})의 요단백이 {_PROTEIN} 이상으로 이미 만성콩팥병 범위",
        "confirm with a urine albumin- or protein-to-creatinine ratio and repeat in 3 months",
        "소변 알부민(단백)/크레아티닌 비로 확인하고 3개월 후 재검 필요",
    ),
}
# Every flag and rule has its words, and every word a flag or rule.
assert set(_WORDS) == {(o, f) for o in OUTCOMES for f in FLAGS[o]} | {(o, r[0]) for o in OUTCOMES for r in RULES[o]}

REASONS: dict[str, Reason] = {
    rid: Reason(rid, en, ko)
    for (o, key), (en_now, ko_now, en_earlier, ko_earlier) in _WORDS.items()
    for rid, en, ko in ((reason_id(o, key), en_now, ko_now), (reason_id(o, key, earlier=True), en_earlier, ko_earlier))
}


def reason_text(rid: str, lang: str, date: str | None = None) -> str:
    """The reason `rid` (as `applicability` gives it in `reason_id`) in 'en' or 'ko', with the date
    of the earlier checkup it was carried from (`reason_date`) where it has one."""
    return REASONS[rid].text(lang, date)


# --------------------------------------------------------------------------------------------
# The values judged, and the person's earlier checkups
# --------------------------------------------------------------------------------------------


def judged_values(df: pd.DataFrame | Columns) -> dict[str, np.ndarray]:
    """Per record: every flag (1 = yes) and measured field that eligibility reads, eGFR included.

    Missing stays NaN: an unknown history counts as none, an unmeasured lab as normal.
    """
    cols = as_columns(df)

    def col(name: str) -> np.ndarray:
        return np.asarray(cols[name], dtype=float) if name in cols else np.full(cols.n, np.nan)

    out = {f: col(f) for f in ALL_FLAGS}
    for fields in GROUPS.values():
        for f in fields:
            if f != "egfr":
                out[f] = col(f)
    out["egfr"] = col("egfr") if "egfr" in cols else egfr_ckd_epi_2021(cols)
    return out


def _group_recorded(values: dict[str, np.ndarray], group: str) -> np.ndarray:
    rec = np.zeros(len(values["egfr"]), dtype=bool)
    for f in RECORDED_BY[group]:
        rec |= ~np.isnan(values[f])
    return rec


@dataclass
class History:
    """What each row's person showed at EARLIER checkups, aligned with the rows being judged.

    `values[f]`: field f at the last earlier checkup that recorded f's group (NaN if none);
    `group_date[g]`: that checkup's date; `flag_date[f]`: date of the last earlier checkup with
    flag f = 1. Dates are datetime64[D], NaT where there is no such checkup.
    """

    values: dict[str, np.ndarray]
    group_date: dict[str, np.ndarray]
    flag_date: dict[str, np.ndarray]

    @classmethod
    def empty(cls, n: int) -> History:
        """No earlier checkups (a first checkup, or a row without person_id / exam_date)."""
        nat = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
        return cls(
            {f: np.full(n, np.nan) for f in _GROUP_OF},
            {g: nat.copy() for g in GROUPS},
            {f: nat.copy() for f in ALL_FLAGS},
        )

    def advance(self, df: pd.DataFrame | Columns, date: np.ndarray, active: np.ndarray | None = None) -> History:
        """The history the NEXT checkup of each person will have, once the checkups `df` (one per
        person, aligned with this history's rows, dated `date`) are added. Rows where `active` is
        False did not attend and keep their history."""
        cur = judged_values(df)
        day = np.asarray(date).astype("datetime64[D]")
        act = np.ones(len(day), dtype=bool) if active is None else np.asarray(active, dtype=bool)
        values, group_date, flag_date = dict(self.values), dict(self.group_date), dict(self.flag_date)
        for g, fields in GROUPS.items():
            now = act & _group_recorded(cur, g)
            group_date[g] = np.where(now, day, self.group_date[g])
            for f in fields:
                values[f] = np.where(now, cur[f], self.values[f])
        for f in ALL_FLAGS:
            flag_date[f] = np.where(act & (cur[f] == 1), day, self.flag_date[f])
        return History(values, group_date, flag_date)

    @classmethod
    def of_frame(cls, df: pd.DataFrame | Columns, values: dict[str, np.ndarray] | None = None) -> History:
        """Each row's history from the earlier rows of the same person in the same input."""
        cols = as_columns(df)
        n = cols.n
        if n <= 1 or "person_id" not in cols or "exam_date" not in cols:
            return cls.empty(n)
        values = judged_values(cols) if values is None else values
        pid = cols["person_id"]
        missing_pid = pd.isna(pid)
        date = np.asarray(cols["exam_date"]).astype("datetime64[ns]")
        # The same ordering as derive.longitudinal_features: lexsort is stable, so same-day rows
        # keep their input order and an earlier row counts as the earlier checkup.
        order = np.lexsort((date, np.where(missing_pid, "", pid).astype(str)))
        pid_s, date_s = pid[order], date[order]
        valid = ~missing_pid[order] & ~np.isnat(date_s)
        same = np.zeros(n, dtype=bool)
        same[1:] = (pid_s[1:] == pid_s[:-1]) & valid[1:] & valid[:-1]
        starts = np.flatnonzero(~same)
        run_start = np.repeat(starts, np.diff(np.append(starts, n)))
        day_s = date_s.astype("datetime64[D]")
        inverse = np.empty(n, dtype=np.int64)
        inverse[order] = np.arange(n)
        positions = np.arange(n)

        def last_earlier(present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """(found, index) of the last earlier row of the same person where `present` (sorted)."""
            last = np.maximum.accumulate(np.where(present, positions, -1))
            prev = np.full(n, -1)
            prev[1:] = last[:-1]
            found = (prev >= run_start) & same
            return found, np.where(found, prev, 0)

        def dated(found: np.ndarray, idx: np.ndarray) -> np.ndarray:
            return np.where(found, day_s[idx], np.datetime64("NaT"))[inverse]

        hist = cls.empty(n)
        sorted_values = {f: v[order] for f, v in values.items()}
        for g, fields in GROUPS.items():
            found, idx = last_earlier(_group_recorded(sorted_values, g))
            hist.group_date[g] = dated(found, idx)
            for f in fields:
                hist.values[f] = np.where(found, sorted_values[f][idx], np.nan)[inverse]
        for f in ALL_FLAGS:
            found, idx = last_earlier(sorted_values[f] == 1)
            hist.flag_date[f] = dated(found, idx)
        return hist


def _beyond(v: np.ndarray, direction: str, cut: float) -> np.ndarray:
    return v >= cut if direction == ">=" else v < cut


def earlier_in_range(outcome: str, earlier: Sequence[Mapping[str, float]]) -> tuple[int, str] | None:
    """(index, field) of the newest of `earlier` (a person's earlier checkups oldest first, each its
    model values by feature name) with a value in `outcome`'s disease range (`RULES`), else None.
    Applicability reads this checkup's values (and a lipid panel's carried ones), so a glucose of
    131 two years ago followed by 118 now is still scored as new: the clinician must hear of it."""
    for i in range(len(earlier) - 1, -1, -1):
        for _key, f, direction, cut in RULES[outcome]:
            v = earlier[i].get(f)
            if v is not None and np.isfinite(v) and bool(_beyond(np.asarray(v), direction, cut)):
                return i, f
    return None


class Judged(NamedTuple):
    """One outcome's applicability, per row. Where it does not apply: the first reason, as the
    English text the API returns (`reason`), its id in `REASONS` (`reason_id`) and, for a reason
    carried from an earlier checkup, that checkup's ISO date (`reason_date`); None elsewhere."""

    applies: np.ndarray
    reason: np.ndarray
    reason_id: np.ndarray
    reason_date: np.ndarray


def _reasons_listed(
    o: str, values: dict[str, np.ndarray], hist: History, recorded_now: dict[str, np.ndarray]
) -> list[tuple[np.ndarray, str, np.ndarray | None]]:
    """(condition, reason id, dates of the earlier checkup or None) of outcome `o`, in the order
    reasons are given: this checkup's flags, flags of earlier checkups, this checkup's values, then
    values carried from the last earlier measurement (only where this checkup lacks them)."""
    items: list[tuple[np.ndarray, str, np.ndarray | None]] = []
    for f in FLAGS[o]:
        items.append((values[f] == 1, reason_id(o, f), None))
    for f in FLAGS[o]:
        items.append((~np.isnat(hist.flag_date[f]), reason_id(o, f, earlier=True), hist.flag_date[f]))
    for key, f, direction, cut in RULES[o]:
        items.append((_beyond(values[f], direction, cut), reason_id(o, key), None))
    for key, f, direction, cut in RULES[o]:
        g = _GROUP_OF[f]
        c = ~recorded_now[g] & _beyond(hist.values[f], direction, cut)
        items.append((c, reason_id(o, key, earlier=True), hist.group_date[g]))
    return items


def applicability(
    df: pd.DataFrame | Columns,
    outcomes: tuple[str, ...] = OUTCOMES,
    history: History | None = None,
    reasons: bool = True,
) -> dict[str, Judged]:
    """Per outcome: whether it applies to each row and, where not, the first listed reason
    (`Judged`; see `_reasons_listed` for the order).

    `history` defaults to the earlier rows of the same person in `df`; the generator passes its own.
    With `reasons=False` the reason arrays stay all None (cheaper where only `applies` is used).
    """
    cols = as_columns(df)
    values = judged_values(cols)
    hist = History.of_frame(cols, values) if history is None else history
    recorded_now = {g: _group_recorded(values, g) for g in GROUPS}
    n = cols.n
    out = {}
    for o in outcomes:
        applies = np.ones(n, dtype=bool)
        reason, rid, date = (np.full(n, None, dtype=object) for _ in range(3))
        # Reverse order so the first listed reason wins where several hold.
        for c, key, dates in reversed(_reasons_listed(o, values, hist, recorded_now)):
            applies &= ~c
            if not reasons or not c.any():
                continue
            rid[c] = key
            if dates is None:
                reason[c], date[c] = REASONS[key].en, None
            else:
                # A cohort has far fewer distinct dates than rows: format each date once.
                days, inverse = np.unique(dates[c].astype("datetime64[D]"), return_inverse=True)
                iso = np.datetime_as_string(days, unit="D").astype(object)
                head, tail = REASONS[key].en.split("{date}")
                reason[c] = (head + iso + tail)[inverse.ravel()]
                date[c] = iso[inverse.ravel()]
        out[o] = Judged(applies, reason, rid, date)
    return out


def eligibility(df: pd.DataFrame, outcomes: tuple[str, ...] = OUTCOMES, history: History | None = None) -> pd.DataFrame:
    """Boolean frame, one column per outcome: True where the outcome applies to the record."""
    judged = applicability(df, outcomes, history, reasons=False)
    return pd.DataFrame({o: judged[o].applies for o in outcomes}, index=df.index)


def ineligibility_reasons(
    df: pd.DataFrame, outcomes: tuple[str, ...] = OUTCOMES, history: History | None = None
) -> pd.DataFrame:
    """String frame, one column per outcome: the first reason it does not apply (English), else None."""
    judged = applicability(df, outcomes, history)
    return pd.DataFrame({o: judged[o].reason for o in outcomes}, index=df.index)


# A label on a checkup its outcome does not apply to is left out (labels count first diagnoses);
# past this share of an outcome's events the left-out ones are a WARNING, not a note: the labels
# were likely built as "any diagnosis code in the year", prevalent cases included.
LABELS_NOT_APPLICABLE_WARN_SHARE = 0.2


def labels_not_applicable(df: pd.DataFrame, outcomes: tuple[str, ...] = OUTCOMES) -> dict[str, tuple[int, int, int]]:
    """Per outcome whose label column `df` has: (labelled rows the outcome does not apply to, their
    events, all labelled events). Those rows are never trained on nor evaluated: a known condition
    or values already in the disease range are not a first diagnosis to predict."""
    present = tuple(o for o in outcomes if label_column(o) in df.columns)
    if not present or not len(df):
        return {}
    applies = applicability(df, present, reasons=False)
    out = {}
    for o in present:
        y = pd.to_numeric(df[label_column(o)], errors="coerce").to_numpy(dtype=float)
        labelled = ~np.isnan(y)
        left = labelled & ~applies[o].applies
        out[o] = (int(left.sum()), int((y[left] == 1).sum()), int((y[labelled] == 1).sum()))
    return out


def labels_not_applicable_lines(counts: dict[str, tuple[int, int, int]]) -> list[str]:
    """One line per outcome with labelled rows left out: "WARNING: ..." when they hold more than
    `LABELS_NOT_APPLICABLE_WARN_SHARE` of its events, else "note: ..."."""
    lines = []
    for o, (rows, events, all_events) in counts.items():
        if not rows:
            continue
        share = events / all_events if all_events else 0.0
        level = "WARNING" if share > LABELS_NOT_APPLICABLE_WARN_SHARE else "note"
        what = f"{rows:,} labelled {'row' if rows == 1 else 'rows'} ({events:,} of the {all_events:,} events)"
        lines.append(
            f"{level}: {o}: {what} left out: the outcome does not apply to them (a known condition, or this or the "
            "last checkup already in the disease range), "
            f"and a label counts only a first diagnosis; `checkup-risk score` gives each row's reason in {o}_reason"
        )
    return lines
