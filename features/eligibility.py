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

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.derive import Columns, as_columns, egfr_ckd_epi_2021
from features.schema import OUTCOMES

# Disease cut-offs that already mean "has the disease" (NHIS result-judgement thresholds).
GLUCOSE_DIABETES = 126.0
SBP_HYPERTENSION = 140.0
DBP_HYPERTENSION = 90.0
TC_HIGH = 240.0
LDL_HIGH = 160.0
TG_HIGH = 200.0
HDL_LOW = 40.0
EGFR_CKD = 60.0
URINE_PROTEIN_1PLUS = 3.0


def _n(x: float) -> str:
    """A cut-off as written in a reason: 126, not 126.0."""
    return f"{x:g}"


# Flags (0/1) that make an outcome not applicable, per outcome, in the order reasons are given.
FLAGS: dict[str, tuple[str, ...]] = {
    "cvd": ("history_stroke", "history_heart_disease"),
    "diabetes": ("history_diabetes", "on_diabetes_medication"),
    "hypertension": ("history_hypertension", "on_antihypertensive"),
    "dyslipidemia": ("history_dyslipidemia", "on_statin"),
    "ckd": (),
}
ALL_FLAGS: tuple[str, ...] = tuple(f for o in OUTCOMES for f in FLAGS[o])

# Measures that are drawn together: when none of a group was recorded at this checkup, the whole
# group is taken from the person's last earlier checkup that recorded it (a panel is judged as the
# panel it was; half of one checkup's lipids and half of another's would be no real panel).
GROUPS: dict[str, tuple[str, ...]] = {
    "glucose": ("fasting_glucose",),
    "bp": ("sbp", "dbp"),
    "lipids": ("total_cholesterol", "ldl", "triglycerides", "hdl"),
    "creatinine": ("egfr",),
    "urine": ("urine_protein",),
}
_GROUP_OF: dict[str, str] = {f: g for g, fs in GROUPS.items() for f in fs}

# Record columns an EARLIER checkup must keep for eligibility of later ones (a streaming scorer
# that keeps only part of each person's past must keep at least these, next to
# `features.derive.HISTORY_INPUTS`). eGFR comes from creatinine, sex and age.
HISTORY_INPUTS: tuple[str, ...] = (
    ("person_id", "exam_date") + ALL_FLAGS
    + tuple(f for fs in GROUPS.values() for f in fs if f != "egfr")
    + ("serum_creatinine", "sex", "age", "age_group")
)

# Value rules: outcome -> (reason key, measured field, direction, cut-off), in reason order.
RULES: dict[str, tuple[tuple[str, str, str, float], ...]] = {
    "cvd": (),
    "diabetes": (("fasting_glucose", "fasting_glucose", ">=", GLUCOSE_DIABETES),),
    "hypertension": (("sbp", "sbp", ">=", SBP_HYPERTENSION), ("dbp", "dbp", ">=", DBP_HYPERTENSION)),
    "dyslipidemia": (("total_cholesterol", "total_cholesterol", ">=", TC_HIGH), ("ldl", "ldl", ">=", LDL_HIGH),
                     ("triglycerides", "triglycerides", ">=", TG_HIGH), ("hdl", "hdl", "<", HDL_LOW)),
    "ckd": (("egfr", "egfr", "<", EGFR_CKD), ("urine_protein", "urine_protein", ">=", URINE_PROTEIN_1PLUS)),
}

# --------------------------------------------------------------------------------------------
# Reasons. Each is keyed by (outcome, key) and comes in two variants: about this checkup, and
# carried from an earlier one (a `{date}` placeholder). English is what `applicability` returns
# (the API's language); `reason_text` renders any of them, dated or not, in Korean.
# Cut-off numbers come from the constants above, never typed twice.
# --------------------------------------------------------------------------------------------

_BP = f"{_n(SBP_HYPERTENSION)}/{_n(DBP_HYPERTENSION)}"

# (English, Korean) for this checkup's own values or answers.
_NOW: dict[str, dict[str, tuple[str, str]]] = {
    "cvd": {
        "history_stroke": ("history of stroke: not a first event", "뇌졸중 과거력이 있어 첫 발생 예측 대상이 아님"),
        "history_heart_disease": ("history of heart disease: not a first event",
                                  "심장병 과거력이 있어 첫 발생 예측 대상이 아님"),
    },
    "diabetes": {
        "history_diabetes": ("already diagnosed with diabetes", "이미 당뇨병을 진단받음"),
        "on_diabetes_medication": ("on diabetes medication", "당뇨약 복용 중"),
        "fasting_glucose": (f"fasting glucose >= {_n(GLUCOSE_DIABETES)} mg/dL is already in the diabetes range",
                            f"공복혈당 {_n(GLUCOSE_DIABETES)} mg/dL 이상으로 이미 당뇨병 범위"),
    },
    "hypertension": {
        "history_hypertension": ("already diagnosed with hypertension", "이미 고혈압을 진단받음"),
        "on_antihypertensive": ("on antihypertensive medication", "고혈압약 복용 중"),
        "sbp": (f"blood pressure >= {_BP} mmHg is already in the hypertension range",
                f"혈압 {_BP} mmHg 이상으로 이미 고혈압 범위"),
        "dbp": (f"blood pressure >= {_BP} mmHg is already in the hypertension range",
                f"혈압 {_BP} mmHg 이상으로 이미 고혈압 범위"),
    },
    "dyslipidemia": {
        "history_dyslipidemia": ("already diagnosed with dyslipidemia", "이미 이상지질혈증을 진단받음"),
        "on_statin": ("on a statin", "스타틴 복용 중"),
        "total_cholesterol": (f"total cholesterol >= {_n(TC_HIGH)} mg/dL is already in the disease range",
                              f"총콜레스테롤 {_n(TC_HIGH)} mg/dL 이상으로 이미 질환 범위"),
        "ldl": (f"LDL cholesterol >= {_n(LDL_HIGH)} mg/dL is already in the disease range",
                f"LDL 콜레스테롤 {_n(LDL_HIGH)} mg/dL 이상으로 이미 질환 범위"),
        "triglycerides": (f"triglycerides >= {_n(TG_HIGH)} mg/dL are already in the disease range",
                          f"중성지방 {_n(TG_HIGH)} mg/dL 이상으로 이미 질환 범위"),
        "hdl": (f"HDL cholesterol < {_n(HDL_LOW)} mg/dL is already in the disease range",
                f"HDL 콜레스테롤 {_n(HDL_LOW)} mg/dL 미만으로 이미 질환 범위"),
    },
    "ckd": {
        "egfr": (f"eGFR < {_n(EGFR_CKD)} mL/min/1.73m2 already meets the CKD definition",
                 f"eGFR {_n(EGFR_CKD)} mL/min/1.73m² 미만으로 이미 만성콩팥병 기준에 해당"),
        "urine_protein": ("urine protein >= 1+ already meets the CKD definition",
                          "요단백 1+ 이상으로 이미 만성콩팥병 기준에 해당"),
    },
}

# The same, carried from an earlier checkup whose date fills `{date}`.
_EARLIER: dict[str, dict[str, tuple[str, str]]] = {
    "cvd": {
        "history_stroke": ("history of stroke recorded at the checkup of {date}: not a first event",
                           "{date} 검진에서 뇌졸중 과거력이 기록되어 첫 발생 예측 대상이 아님"),
        "history_heart_disease": ("history of heart disease recorded at the checkup of {date}: not a first event",
                                  "{date} 검진에서 심장병 과거력이 기록되어 첫 발생 예측 대상이 아님"),
    },
    "diabetes": {
        "history_diabetes": ("already diagnosed with diabetes (recorded at the checkup of {date})",
                             "이미 당뇨병을 진단받음 ({date} 검진에서 기록)"),
        "on_diabetes_medication": ("on diabetes medication (recorded at the checkup of {date})",
                                   "당뇨약 복용 중 ({date} 검진에서 기록)"),
        "fasting_glucose": (f"fasting glucose >= {_n(GLUCOSE_DIABETES)} mg/dL at the last measurement ({{date}}) "
                            "is already in the diabetes range",
                            f"마지막 측정({{date}})의 공복혈당이 {_n(GLUCOSE_DIABETES)} mg/dL 이상으로 이미 당뇨병 범위"),
    },
    "hypertension": {
        "history_hypertension": ("already diagnosed with hypertension (recorded at the checkup of {date})",
                                 "이미 고혈압을 진단받음 ({date} 검진에서 기록)"),
        "on_antihypertensive": ("on antihypertensive medication (recorded at the checkup of {date})",
                                "고혈압약 복용 중 ({date} 검진에서 기록)"),
        "sbp": (f"blood pressure >= {_BP} mmHg at the last measurement ({{date}}) is already in the "
                "hypertension range", f"마지막 측정({{date}})의 혈압이 {_BP} mmHg 이상으로 이미 고혈압 범위"),
        "dbp": (f"blood pressure >= {_BP} mmHg at the last measurement ({{date}}) is already in the "
                "hypertension range", f"마지막 측정({{date}})의 혈압이 {_BP} mmHg 이상으로 이미 고혈압 범위"),
    },
    "dyslipidemia": {
        "history_dyslipidemia": ("already diagnosed with dyslipidemia (recorded at the checkup of {date})",
                                 "이미 이상지질혈증을 진단받음 ({date} 검진에서 기록)"),
        "on_statin": ("on a statin (recorded at the checkup of {date})", "스타틴 복용 중 ({date} 검진에서 기록)"),
        "total_cholesterol": (f"total cholesterol >= {_n(TC_HIGH)} mg/dL at the last lipid panel ({{date}}) "
                              "is already in the disease range",
                              f"마지막 지질검사({{date}})의 총콜레스테롤이 {_n(TC_HIGH)} mg/dL 이상으로 이미 질환 범위"),
        "ldl": (f"LDL cholesterol >= {_n(LDL_HIGH)} mg/dL at the last lipid panel ({{date}}) "
                "is already in the disease range",
                f"마지막 지질검사({{date}})의 LDL 콜레스테롤이 {_n(LDL_HIGH)} mg/dL 이상으로 이미 질환 범위"),
        "triglycerides": (f"triglycerides >= {_n(TG_HIGH)} mg/dL at the last lipid panel ({{date}}) "
                          "are already in the disease range",
                          f"마지막 지질검사({{date}})의 중성지방이 {_n(TG_HIGH)} mg/dL 이상으로 이미 질환 범위"),
        "hdl": (f"HDL cholesterol < {_n(HDL_LOW)} mg/dL at the last lipid panel ({{date}}) "
                "is already in the disease range",
                f"마지막 지질검사({{date}})의 HDL 콜레스테롤이 {_n(HDL_LOW)} mg/dL 미만으로 이미 질환 범위"),
    },
    "ckd": {
        "egfr": (f"eGFR < {_n(EGFR_CKD)} mL/min/1.73m2 at the last creatinine test ({{date}}) already meets "
                 "the CKD definition",
                 f"마지막 크레아티닌 검사({{date}})의 eGFR이 {_n(EGFR_CKD)} mL/min/1.73m² 미만으로 이미 만성콩팥병 "
                 "기준에 해당"),
        "urine_protein": ("urine protein >= 1+ at the last urine test ({date}) already meets the CKD definition",
                          "마지막 소변검사({date})의 요단백이 1+ 이상으로 이미 만성콩팥병 기준에 해당"),
    },
}
assert {o: set(r) for o, r in _NOW.items()} == {o: set(r) for o, r in _EARLIER.items()}

# Public views kept for callers that list the reasons (English and Korean, this checkup's variant).
REASONS: dict[str, dict[str, str]] = {o: {k: en for k, (en, _) in r.items()} for o, r in _NOW.items()}
REASONS_KO: dict[str, dict[str, str]] = {o: {k: ko for k, (_, ko) in r.items()} for o, r in _NOW.items()}
# The dated variants, with a `{date}` placeholder (ISO date).
EARLIER_REASONS: dict[str, dict[str, str]] = {o: {k: en for k, (en, _) in r.items()} for o, r in _EARLIER.items()}
EARLIER_REASONS_KO: dict[str, dict[str, str]] = {o: {k: ko for k, (_, ko) in r.items()}
                                                 for o, r in _EARLIER.items()}

_KO_BY_EN: dict[str, str] = {en: ko for r in _NOW.values() for en, ko in r.values()}
# A dated English reason as a pattern capturing its date, paired with its Korean template.
_DATED: list[tuple[re.Pattern[str], str]] = [
    (re.compile(re.escape(en).replace(re.escape("{date}"), r"(?P<date>\d{4}-\d{2}-\d{2})") + r"\Z"), ko)
    for r in _EARLIER.values() for en, ko in dict(r.values()).items()
]


def reason_text(reason: str, lang: str) -> str:
    """A reason as `applicability` gives it (English), in the asked language ('en' or 'ko').

    Dated reasons ("... at the last lipid panel (2019-05-02) ...") keep their date in Korean too.
    An unknown text is returned as it is.
    """
    if lang == "en":
        return reason
    ko = _KO_BY_EN.get(reason)
    if ko is not None:
        return ko
    for pattern, template in _DATED:
        m = pattern.match(reason)
        if m:
            return template.format(date=m.group("date"))
    return reason


# --------------------------------------------------------------------------------------------
# The values judged, and the person's earlier checkups
# --------------------------------------------------------------------------------------------


def judged_values(df: "pd.DataFrame | Columns") -> dict[str, np.ndarray]:
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
    for f in GROUPS[group]:
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
    def empty(cls, n: int) -> "History":
        """No earlier checkups (a first checkup, or a row without person_id / exam_date)."""
        nat = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
        return cls({f: np.full(n, np.nan) for f in _GROUP_OF}, {g: nat.copy() for g in GROUPS},
                   {f: nat.copy() for f in ALL_FLAGS})

    def advance(self, df: "pd.DataFrame | Columns", date: np.ndarray, active: np.ndarray | None = None
                ) -> "History":
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
    def of_frame(cls, df: "pd.DataFrame | Columns", values: dict[str, np.ndarray] | None = None) -> "History":
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


def _dated_text(template: str, dates: np.ndarray) -> np.ndarray:
    """`template` with each date filled in, vectorised (object array of str)."""
    head, tail = template.split("{date}")
    # A cohort has far fewer distinct dates than rows: format each date once.
    days, inverse = np.unique(dates.astype("datetime64[D]"), return_inverse=True)
    texts = head + np.datetime_as_string(days, unit="D").astype(object) + tail
    return texts[inverse.ravel()]


def applicability(df: "pd.DataFrame | Columns", outcomes: tuple[str, ...] = OUTCOMES,
                  history: History | None = None, reasons: bool = True
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per outcome: (applies, reason) arrays; reason is the first listed reason it does not apply
    (English str, or None where it applies).

    Reasons are listed: this checkup's flags, flags of earlier checkups, this checkup's values,
    then values carried from the last earlier measurement (only where this checkup lacks them).
    `history` defaults to the earlier rows of the same person in `df`; the generator passes its own.
    With `reasons=False` the reason array stays all None (cheaper where only `applies` is used).
    """
    cols = as_columns(df)
    values = judged_values(cols)
    hist = History.of_frame(cols, values) if history is None else history
    recorded_now = {g: _group_recorded(values, g) for g in GROUPS}
    out = {}
    for o in outcomes:
        # (condition, reason: str or per-row object array restricted to the condition's rows)
        items: list[tuple[np.ndarray, "str | np.ndarray"]] = []
        for f in FLAGS[o]:
            items.append((values[f] == 1, REASONS[o][f]))
        for f in FLAGS[o]:
            c = ~np.isnat(hist.flag_date[f])
            items.append((c, (EARLIER_REASONS[o][f], hist.flag_date[f])))
        for key, f, direction, cut in RULES[o]:
            items.append((_beyond(values[f], direction, cut), REASONS[o][key]))
        for key, f, direction, cut in RULES[o]:
            g = _GROUP_OF[f]
            c = ~recorded_now[g] & _beyond(hist.values[f], direction, cut)
            items.append((c, (EARLIER_REASONS[o][key], hist.group_date[g])))
        n = cols.n
        applies = np.ones(n, dtype=bool)
        reason = np.full(n, None, dtype=object)
        # Reverse order so the first listed reason wins where several hold.
        for c, text in reversed(items):
            applies &= ~c
            if not reasons or not c.any():
                continue
            if isinstance(text, str):
                reason[c] = text
            else:
                template, dates = text
                reason[c] = _dated_text(template, dates[c])
        out[o] = (applies, reason)
    return out


def eligibility(df: pd.DataFrame, outcomes: tuple[str, ...] = OUTCOMES, history: History | None = None
                ) -> pd.DataFrame:
    """Boolean frame, one column per outcome: True where the outcome applies to the record."""
    both = applicability(df, outcomes, history, reasons=False)
    return pd.DataFrame({o: both[o][0] for o in outcomes}, index=df.index)


def ineligibility_reasons(df: pd.DataFrame, outcomes: tuple[str, ...] = OUTCOMES,
                          history: History | None = None) -> pd.DataFrame:
    """String frame, one column per outcome: the first reason it does not apply, else None."""
    both = applicability(df, outcomes, history)
    return pd.DataFrame({o: both[o][1] for o in outcomes}, index=df.index)
