"""Validated checkups in, the /score response out: probabilities, applicability with reasons,
categories, top-k SHAP contributions, history, staleness and warnings. Shared by the HTTP routes,
the clinician report, CDS Hooks and FHIR, so that each rule below lives in one place:

- Records of one person in one call are that person's checkups: each is scored with the earlier
  ones as its history (`features.derive` orders by person, then date), and says how many it used.
- A checkup older than `stale_after_days` is flagged stale: its one-year window has passed.
- "No earlier record" is never listed as a risk factor: missing longitudinal features stay in
  `other_log_odds`, so base + listed + other is still the calibrated log-odds.
- Nor is "not measured", in the grouped (clinician) view that the report, FHIR and CDS read: what a
  missing measurement contributes is the model's adjustment for its absence, so it stays in
  `other_log_odds` too (`grouped_contributions`). The per-feature view (data scientists) still
  lists it, with its `value` null.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from features.cutoffs import CRITICAL, Critical
from features.derive import (
    FEATURES,
    LASTING_FLAGS,
    PANEL_MARKER,
    Columns,
    absent_history,
    age_band,
    feature_matrix,
    missing_key_inputs,
    unmeasured,
)
from features.eligibility import Judged, applicability, reason_id
from features.labels import CRITICAL_HEADING, FEATURE_GROUPS, critical_reached, critical_text
from features.schema import BMI_PLAUSIBLE, BY_NAME, age_spans, age_to_group, ages_disagree, implausible_bmi
from models import provenance
from models.bundle import RiskModel
from models.engine import Scores
from models.interval import pair_around
from models.outcomes import OUTCOME_SPECS
from serving.settings import DEFAULT_STALE_AFTER_DAYS


def _round(x: float, digits: int) -> float:
    return float(round(x, digits))


def _date(v: object) -> dt.date:
    return v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v))


def person_order(person_ids: list[str], dates: list[dt.date]) -> np.ndarray:
    """Positions sorted by person, then date, stable among equal dates: the order in which
    `features.derive.longitudinal_features` reads history (numpy's lexsort is stable)."""
    day = np.array([d.toordinal() for d in dates], dtype=np.int64)
    return np.lexsort((day, np.array([str(p) for p in person_ids], dtype=object).astype(str)))


def history_counts(person_ids: list[str], dates: list[dt.date]) -> np.ndarray:
    """Per record: how many of the same person's records come before it in `person_order` (the
    history its features were built from). /score and /report refuse two of one person on one date
    (`serving.schemas.one_checkup_a_day`); FHIR and CDS group a day's Observations into one visit."""
    earlier = np.zeros(len(person_ids), dtype=np.int64)
    seen: Counter[str] = Counter()
    for i in person_order(person_ids, dates):
        earlier[i] = seen[str(person_ids[i])]
        seen[str(person_ids[i])] += 1
    return earlier


def _id_key(person_id: object) -> str:
    """What a person reads: compatibility forms folded (NFKC) and invisible format characters (zero
    width spaces, joiners, BOM) dropped."""
    text = unicodedata.normalize("NFKC", str(person_id))
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def lookalike_ids(person_ids: list[object]) -> list[list[int]]:
    """Per record, the other records whose person_id reads the same but is another string (one sent
    decomposed, "홍" as two jamo, or with a zero-width space): history is matched by the exact id."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(person_ids):
        groups.setdefault(_id_key(p), []).append(i)
    out: list[list[int]] = [[] for _ in person_ids]
    for members in groups.values():
        if len({str(person_ids[i]) for i in members}) > 1:
            for i in members:
                out[i] = [j for j in members if str(person_ids[j]) != str(person_ids[i])]
    return out


def person_inconsistencies(records: list[dict], dates: list[dt.date]) -> list[list[str]]:
    """Per record, warnings when it disagrees with the same person's previous checkup in the
    request: another sex, or an age that does not move with the time between the two exams. Both
    are allowed (a typo in one of them), but the earlier one was used as this one's history. And
    when its person_id only looks like another record's (`lookalike_ids`)."""
    out: list[list[str]] = [[] for _ in records]
    person_ids = [r["person_id"] for r in records]
    for i, others in enumerate(lookalike_ids(person_ids)):
        if others:
            out[i].append(
                f"person_id looks the same as that of record(s) {', '.join(map(str, others))} but differs in "
                "Unicode form or invisible characters: scored as another person, without that history"
            )
    previous: dict[str, int] = {}
    for i in person_order(person_ids, dates):
        j = previous.get(str(person_ids[i]))
        previous[str(person_ids[i])] = int(i)
        if j is None:
            continue
        a, b = records[j], records[i]
        if a.get("sex") is not None and b.get("sex") is not None and a["sex"] != b["sex"]:
            out[i].append(
                f"sex differs from this person's checkup of {dates[j].isoformat()}, which was used as its history: "
                "check that both are the same person's"
            )
        years = (dates[i] - dates[j]).days / 365.25
        if ages_disagree(
            age_spans(a.get("age"), a.get("age_group")), age_spans(b.get("age"), b.get("age_group")), years
        ):
            out[i].append(
                f"age does not match the {years:.1f} years since this person's checkup of "
                f"{dates[j].isoformat()}, which was used as its history: check both ages"
            )
    return out


def exam_age(exam_date: dt.date, today: dt.date) -> tuple[int, int]:
    """(whole years, days) from the exam to today, as staleness warnings, the stale card and the report
    say it: calendar years, so an exam five years ago today is 5 years old (days / 365.25 gave 4)."""
    days = (today - exam_date).days
    years = today.year - exam_date.year - ((today.month, today.day) < (exam_date.month, exam_date.day))
    return max(years, 0), days


# The features a value outside the training range is said for: the measurements a caller sends.
# Derived and longitudinal features (BMI, a change since the last checkup, the years between
# checkups) and coded answers are held to the range too, but in silence: the caller never sent
# them, or the value is a code, not a measurement to check.
RANGE_SAID: frozenset[str] = frozenset(f for f in FEATURES if f in BY_NAME and not BY_NAME[f].codes)


def measurements_outside(model: RiskModel, X: np.ndarray) -> list[list[str]]:
    """Per row of the model matrix, the measurements sent (`RANGE_SAID`) that lie outside the
    training data's range and are scored at its edge: what `/score` warns of and the report notes."""
    outside = model.outside_training(X)
    return [[FEATURES[j] for j in np.flatnonzero(row) if FEATURES[j] in RANGE_SAID] for row in outside]


CRITICAL_WARNING = f"{CRITICAL_HEADING['en'].lower()}, which no one-year risk describes"


def critical_entry(c: Critical) -> dict[str, Any]:
    """A reached `CRITICAL` cut-off as a result's `critical` item: structured for a caller (and the
    CDS card) to act on, with the English text; the cut-off, never the value."""
    return {
        "field": c.feature,
        "cutoff": c.bound,
        "direction": "at_or_above" if c.high else "below",
        "message": critical_text(c, "en"),
    }


def critical_of(entry: Mapping[str, Any]) -> Critical:
    """The `CRITICAL` cut-off a result's `critical` item names."""
    high = entry["direction"] == "at_or_above"
    return next(c for c in CRITICAL if (c.feature, c.high, c.bound) == (entry["field"], high, entry["cutoff"]))


def feature_value(x: np.ndarray, feature: str) -> float | None:
    """One feature of a model row (`FEATURES` order), None where it is missing."""
    v = float(x[FEATURES.index(feature)])
    return None if np.isnan(v) else v


# A diagnosed CKD (`history_ckd`) only makes `ckd` not applicable: no model reads it, since no
# training file records it, so the other risks are those of a person without it.
KNOWN_CKD_WARNING = (
    "a diagnosed chronic kidney disease is not an input of the risk models (their training data do not record "
    "it): the other outcomes' risks do not account for it and may be too low"
)


# Dyslipidemia applies only if the person's last lipid panel was under the disease cut-offs too
# (contract section 2): a checkup without a panel, sent without an earlier checkup that has one,
# cannot show it.
_PANEL_COLUMNS = [FEATURES.index(c) for c in (PANEL_MARKER, f"last_{PANEL_MARKER}")]  # today's or carried
NO_PANEL_ALONE_WARNING = (
    "no lipid panel at this checkup or in the earlier checkups sent: dyslipidemia is scored as if the person's last "
    "panel was under the disease cut-offs; send the earlier checkups that hold it (a last panel in the disease range "
    "makes dyslipidemia not applicable, and the lipids it measured are used)"
)


def thin_outcome(info: Mapping) -> tuple[int, int] | None:
    """(events, events needed) of an outcome fitted on fewer events than the sample-size criteria
    ask for (`models.sample_size`), else None: such a model barely tells people apart, and every
    reader of its risk (response, report, card) is told so."""
    size = info.get("sample_size") or {}
    if size.get("enough") is not False:
        return None
    return int(size["events"]), int(size["required_events"])


def known_ckd(applies: Mapping[str, Judged], i: int) -> bool:
    """Whether record `i`'s CKD does not apply because of a CKD diagnosis (now or earlier)."""
    return "ckd" in applies and str(applies["ckd"].reason_id[i]).startswith(reason_id("ckd", "history_ckd"))


def staleness(exam_date: dt.date, today: dt.date, stale_after_days: int) -> str | None:
    """The warning for an exam older than `stale_after_days`, else None."""
    years, days = exam_age(exam_date, today)
    if days <= stale_after_days:
        return None
    age = f"{years} year{'s' if years != 1 else ''}" if years >= 1 else f"{days} days"
    window = "has passed" if days > 365 else "has partly passed"  # a limit set under a year
    return (
        f"exam_date {exam_date.isoformat()} is {age} old: the one-year risk window after that exam {window}, "
        "so the probability describes that year, not the coming one (stale)"
    )


# Feature -> group as a 0/1 matrix (features x groups), from the one table in features.labels.
_GROUP_MATRIX = np.zeros((len(FEATURES), len(FEATURE_GROUPS)))
for _g, _group in enumerate(FEATURE_GROUPS):
    _GROUP_MATRIX[[FEATURES.index(f) for f in _group.features], _g] = 1.0
_GROUP_MAIN = [None if g.main is None else FEATURES.index(g.main) for g in FEATURE_GROUPS]
_GROUP_FACTOR = np.array([g.factor for g in FEATURE_GROUPS])
DETAILS = ("groups", "features")
# Told (records, results, model version) after each `score_records` call of an observed scorer.
Observer = Callable[[list[dict], list[dict], str], None]


def grouped_contributions(
    row: np.ndarray, base: float, x: np.ndarray, hidden: np.ndarray, top_k: int
) -> tuple[list[dict], float, float]:
    """(contributions, base_log_odds, other_log_odds) of one risk, by measurement group.

    A group's log-odds is the sum of its features' SHAP values, leaving out what only says the
    history lacks something (`hidden`, as in the per-feature view) and what was not measured
    (`features.derive.unmeasured`: the model's adjustment for a missing value, not a factor of the
    person); both stay in "other", and a group with no listable feature is not listed, nor one that
    is no property of the person (`FeatureGroup.factor`: the time since the last checkup). This is the
    one path by which the report, FHIR rationales and CDS cards get their factors. base + listed
    groups + other is the calibrated log-odds: other is computed as the remainder, so the identity
    holds to float64 rounding (a few units in the last place)."""
    hidden = hidden | unmeasured(x[None, :])[0]
    shown = np.where(hidden, 0.0, row)
    sums = shown @ _GROUP_MATRIX
    listable = np.flatnonzero(((~hidden).astype(float) @ _GROUP_MATRIX > 0) & _GROUP_FACTOR)
    top = listable[np.argsort(-np.abs(sums[listable]), kind="stable")[:top_k]]
    out = []
    for g in top:
        group, main = FEATURE_GROUPS[g], _GROUP_MAIN[g]
        value = None if main is None or np.isnan(x[main]) else _round(float(x[main]), 4)
        members = [f for f in group.features if not hidden[FEATURES.index(f)]]
        out.append({"feature": group.id, "value": value, "log_odds": float(sums[g]), "features": members})
    listed = sum(c["log_odds"] for c in out)
    return out, base, float(row.sum() - listed)


class Scorer:
    """Holds one model version, its engine built (`RiskModel.score` serves it); built once per worker."""

    def __init__(self, model: RiskModel, version: str, stale_after_days: int = DEFAULT_STALE_AFTER_DAYS) -> None:
        if int(stale_after_days) < 1:
            raise ValueError(f"stale_after_days must be at least 1, not {stale_after_days}")
        self.model = model
        self.version = version
        self.stale_after_days = int(stale_after_days)
        self.outcomes = tuple(model.models_)
        # Where the model's training data came from (`models.provenance`); a synthetic model says so in
        # every result, so no channel (/score, FHIR, CDS, report) can pass its numbers off as clinical.
        self.training_data = provenance.normalise(getattr(model, "training_data_", None))
        self.synthetic = provenance.is_synthetic(self.training_data)
        # Outcomes fitted on fewer events than the sample-size criteria ask for: (events, needed).
        self.thin = {o: thin for o in self.outcomes if (thin := thin_outcome(model.models_[o].info)) is not None}
        self._observer: Observer | None = None
        # Compile the kernel now: the first request must not pay for it (`RiskModel.engine`).
        model.warm_up()

    def observed(self, observer: Observer) -> Scorer:
        """This scorer (the same model and engine, a shallow copy), telling `observer` the records
        and results of each `score_records` call: how the prediction log sees every route that
        scores (the report scores inside `serving.report`) without a second scoring path."""
        twin = copy.copy(self)
        twin._observer = observer
        return twin

    def probabilities(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Calibrated probability per outcome for rows of the model matrix (eligibility not applied)."""
        return self.model.score(X).probability

    def score_records(
        self,
        records: list[dict],
        explain: bool = True,
        top_k: int = 5,
        today: dt.date | None = None,
        detail: str = "groups",
    ) -> list[dict]:
        """Records must already be valid (see serving.schemas); returns one result per record, in
        the order given. Records sharing a person_id are one person's checkups: each is scored
        with the earlier ones (by exam_date) as its history.

        `detail`: "groups" (default) lists contributions by the measurement they come from
        (`features.labels.FEATURE_GROUPS`), as clinicians read them; "features" lists model
        features, for data scientists."""
        if detail not in DETAILS:
            raise ValueError(f"detail must be one of {DETAILS}, not {detail!r}")
        today = today or dt.date.today()
        for r in records:
            if r.get("exam_date") is None:
                r["exam_date"] = today  # a checkup without a date is today's, so the newest
        dates = [_date(r["exam_date"]) for r in records]
        earlier = history_counts([r["person_id"] for r in records], dates)
        inconsistent = person_inconsistencies(records, dates)
        cols = Columns.from_records(records)
        X = feature_matrix(cols)
        scored = self.model.score(X, explain=explain and top_k > 0, intervals=True)
        applies = applicability(cols, self.outcomes)
        hidden = absent_history(X)
        outside = measurements_outside(self.model, X)
        lacking = missing_key_inputs(records, X)
        bands = age_band(cols)
        results = []
        for i, r in enumerate(records):
            risks = {}
            for o in self.outcomes:
                ok, reason = bool(applies[o][0][i]), applies[o][1][i]
                if not ok:
                    # reason_id / reason_date let a reader render the reason in Korean (features.eligibility).
                    risks[o] = {
                        "probability": None,
                        "probability_interval": None,
                        "applicable": False,
                        "reason": reason,
                        "reason_id": applies[o].reason_id[i],
                        "reason_date": applies[o].reason_date[i],
                        "category": None,
                        "contributions": [],
                    }
                    continue
                risks[o] = _applicable_risk(o, i, scored, X, hidden, top_k, detail)
            missing = lacking[i]
            # First: what needs evaluation now, which no one-year risk describes (every channel says it).
            urgent = [critical_entry(c) for c in critical_reached(functools.partial(feature_value, X[i]))]
            warnings = [f"{CRITICAL_WARNING}: {'; '.join(u['message'] for u in urgent)}"] if urgent else []
            warnings += [
                f"{BY_NAME[k].label_en} ({k}) missing: estimates that use it are less precise" for k in missing
            ]
            if r.get("age") is None:
                warnings.append("age given only as a 5-year band: the band midpoint was used")
            elif r.get("age_group") is not None and age_to_group(float(r["age"])) != int(r["age_group"]):
                # Both given and they disagree: the exact age is the one used; the caller should know.
                warnings.append(
                    f"age {float(r['age']):g} is outside age_group {int(r['age_group'])} "
                    f"({BY_NAME['age_group'].codes.get(int(r['age_group']), '?')}): the age was used"
                )
            warnings += inconsistent[i]
            if outside[i]:
                warnings.append(
                    f"{', '.join(outside[i])} outside the range of the model's training data: scored as the nearest "
                    "value it learned from, so the risks do not follow it further"
                )
            warnings += [
                f"{f} is 0 here but 1 at an earlier checkup of this person: a diagnosis or a family history "
                "does not go away, so 1 was used"
                for f in LASTING_FLAGS
                if r.get(f) == 0 and X[i, FEATURES.index(f)] == 1
            ]
            if implausible_bmi(r.get("height_cm"), r.get("weight_kg")) is not None:
                low, high = BMI_PLAUSIBLE
                warnings.append(
                    f"height_cm and weight_kg give a BMI outside the plausible {low:g}-{high:g} kg/m2: check both"
                )
            if known_ckd(applies, i) and any(v["applicable"] for k, v in risks.items() if k != "ckd"):
                warnings.append(KNOWN_CKD_WARNING)
            lipids = risks.get("dyslipidemia")
            if lipids and lipids["applicable"] and np.isnan(X[i, _PANEL_COLUMNS]).all():
                warnings.append(NO_PANEL_ALONE_WARNING)
            stale = staleness(dates[i], today, self.stale_after_days)
            if stale is not None:
                warnings.append(stale)
            warnings += [
                f"{o}: a rough estimate, fitted on {events:,} events where about {needed:,} are needed (Riley et al.): "
                "it tells people apart little"
                for o, (events, needed) in self.thin.items()
                if risks[o]["applicable"]
            ]
            if (unseen := provenance.unseen(self.training_data, r.get("sex"), bands[i])) is not None:
                warnings.append(unseen)
            if self.synthetic:
                warnings.append(provenance.SYNTHETIC_WARNING)
            if any(v.get("applicable") and v.get("probability_interval") is None for v in risks.values()):
                warnings.append(
                    "this model version has no interval ensemble (saved before intervals existed): "
                    "probability_interval is null; retrain to get it"
                )
            results.append(
                {
                    "person_id": r["person_id"],
                    "exam_date": dates[i].isoformat(),
                    "history_checkups": int(earlier[i]),
                    "stale": stale is not None,
                    "risks": risks,
                    "critical": urgent,
                    "missing_inputs": missing,
                    "warnings": warnings,
                }
            )
        if self._observer is not None:
            self._observer(records, results, self.version)
        return results


def _applicable_risk(
    o: str, i: int, scored: Scores, X: np.ndarray, hidden: np.ndarray, top_k: int, detail: str
) -> dict[str, Any]:
    """Row i's result for an outcome that applies: probability, category, interval (null for an
    outcome without interval members) and, when explained, its contributions."""
    explained = scored.explanation(o)
    if explained is None:
        prob = float(scored.probability[o][i])
    else:
        row, base = explained[0][i], float(explained[1][i])
        # With an explanation, the probability is the sigmoid of base + contributions in
        # float64, so the two agree exactly (the booster's float32 margin differs by ~1e-6).
        prob = float(1.0 / (1.0 + np.exp(-(base + row.sum()))))
    entry: dict[str, Any] = {
        "probability": prob,
        "applicable": True,
        "reason": None,
        "reason_id": None,
        "reason_date": None,
        "category": OUTCOME_SPECS[o].category(prob),
        "contributions": [],
    }
    half = (scored.halfwidth or {}).get(o)
    entry["probability_interval"] = pair_around(prob, float(half[i])) if half is not None else None
    if explained is None:
        return entry
    if detail == "groups":
        entry["contributions"], entry["base_log_odds"], entry["other_log_odds"] = grouped_contributions(
            row, base, X[i], hidden[i], top_k
        )
        return entry
    shown = np.flatnonzero(~hidden[i])
    top = shown[np.argsort(-np.abs(row[shown]), kind="stable")[:top_k]]
    entry["contributions"] = [
        {
            "feature": FEATURES[j],
            "value": None if np.isnan(X[i, j]) else _round(float(X[i, j]), 4),
            "log_odds": float(row[j]),
        }
        for j in top
    ]
    # base + listed contributions + the rest = the calibrated log-odds of `probability`;
    # the rest includes what absent history contributed.
    entry["base_log_odds"] = base
    entry["other_log_odds"] = float(row.sum() - row[top].sum())
    return entry
