"""Validated checkups in, the /score response out: probabilities, applicability with reasons,
categories, top-k SHAP contributions, history, staleness and warnings. Shared by the HTTP routes,
the clinician report, CDS Hooks and FHIR, so that each rule below lives in one place:

- Records of one person in one call are that person's checkups: each is scored with the earlier
  ones as its history (`features.derive` orders by person, then date), and says how many it used.
- A checkup older than `stale_after_days` is flagged stale: its one-year window has passed.
- "No earlier record" is never listed as a risk factor: missing longitudinal features stay in
  `other_log_odds`, so base + listed + other is still the calibrated log-odds.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping

import numpy as np

from features.derive import FEATURES, Columns, absent_history, feature_matrix
from features.eligibility import applicability
from features.labels import FEATURE_GROUPS
from features.schema import BY_NAME, KEY_INPUTS
from models.bundle import RiskModel
from models.interval import pair_around
from models import provenance
from models.outcomes import OUTCOME_SPECS

# Two years: by then the one-year risk window after the exam has passed, with a year's grace for
# the usual delay between a checkup and the visit where it is discussed.
DEFAULT_STALE_AFTER_DAYS = 730
STALE_ENV = "CHECKUP_RISK_STALE_AFTER_DAYS"

# Columns of the model matrix that describe earlier checkups; NaN there means "no earlier record".


def positive_int_from_env(environ: Mapping[str, str], name: str, default: int) -> int:
    """A positive whole number from the environment, else `default`.

    A bad value stops start-up with a message naming the variable, rather than silently using
    the default: a site that set it meant something else."""
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {raw!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")
    return value


def stale_after_days_from_env(environ: Mapping[str, str]) -> int:
    """`CHECKUP_RISK_STALE_AFTER_DAYS` (a positive whole number of days), else two years."""
    return positive_int_from_env(environ, STALE_ENV, DEFAULT_STALE_AFTER_DAYS)


def _round(x: float, digits: int) -> float:
    return float(round(x, digits))


def _date(v: object) -> dt.date:
    return v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v))


def person_order(person_ids: list[str], dates: list[dt.date]) -> np.ndarray:
    """Positions sorted by person, then date, stable among equal dates: the order in which
    `features.derive.longitudinal_features` reads history (numpy's lexsort is stable)."""
    day = np.array([d.toordinal() for d in dates], dtype=np.int64)
    return np.lexsort((day, np.array([str(p) for p in person_ids], dtype=object).astype(str)))


def history_counts(person_ids: list[str], dates: list[dt.date]) -> tuple[np.ndarray, np.ndarray]:
    """Per record: how many of the same person's records come before it in `person_order` (the
    history its features were built from), and how many others of that person share its date."""
    n = len(person_ids)
    earlier = np.zeros(n, dtype=np.int64)
    seen: Counter[str] = Counter()
    for i in person_order(person_ids, dates):
        earlier[i] = seen[str(person_ids[i])]
        seen[str(person_ids[i])] += 1
    keys = [(str(p), d) for p, d in zip(person_ids, dates)]
    per_day = Counter(keys)
    return earlier, np.array([per_day[k] - 1 for k in keys], dtype=np.int64)


def exam_age(exam_date: dt.date, today: dt.date) -> tuple[int, int]:
    """(whole years, days) from the exam to today, as staleness warnings and the report say it."""
    days = (today - exam_date).days
    return int(days // 365.25), days


def staleness(exam_date: dt.date, today: dt.date, stale_after_days: int) -> str | None:
    """The warning for an exam older than `stale_after_days`, else None."""
    years, days = exam_age(exam_date, today)
    if days <= stale_after_days:
        return None
    age = f"{years} year{'s' if years != 1 else ''}" if years >= 1 else f"{days} days"
    return (f"exam_date {exam_date.isoformat()} is {age} old: the one-year risk window after that exam has passed, "
            "so the probability describes that year, not the coming one (stale)")


# Feature -> group as a 0/1 matrix (features x groups), from the one table in features.labels.
_GROUP_MATRIX = np.zeros((len(FEATURES), len(FEATURE_GROUPS)))
for _g, _group in enumerate(FEATURE_GROUPS):
    _GROUP_MATRIX[[FEATURES.index(f) for f in _group.features], _g] = 1.0
_GROUP_MAIN = [None if g.main is None else FEATURES.index(g.main) for g in FEATURE_GROUPS]
DETAILS = ("groups", "features")


def grouped_contributions(row: np.ndarray, base: float, x: np.ndarray, hidden: np.ndarray,
                          top_k: int) -> tuple[list[dict], float, float]:
    """(contributions, base_log_odds, other_log_odds) of one risk, by measurement group.

    A group's log-odds is the sum of its features' SHAP values, leaving out what only says the
    history lacks something (those stay in "other", as in the per-feature view); a group with no
    listable feature is not listed. base + listed groups + other is the calibrated log-odds: other
    is computed as the remainder, so the identity holds to the last bit of float64 addition."""
    shown = np.where(hidden, 0.0, row)
    sums = shown @ _GROUP_MATRIX
    listable = np.flatnonzero((~hidden).astype(float) @ _GROUP_MATRIX > 0)
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
    """Holds one model version and its compiled explainer; built once per worker."""

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
        self.explainer = None
        try:
            from models.fast_explain import FastExplainer
        except ImportError:  # the compiled explainer is an optimisation, not a requirement
            FastExplainer = None
        if FastExplainer is not None:
            self.explainer = FastExplainer.from_model(model)

    def _predict_explain(self, X: np.ndarray, explain: bool) -> dict[str, tuple]:
        if self.explainer is not None:
            if explain:
                return self.explainer.predict_explain(X)
            return {o: (p, None, None) for o, p in self.explainer.predict(X).items()}
        import pandas as pd

        frame = pd.DataFrame(X, columns=list(FEATURES))
        probs = self.model.predict_features(frame)
        out = {}
        for o in self.outcomes:
            contribs, base = self.model.explain_features(frame, o) if explain else (None, None)
            out[o] = (probs[o].to_numpy(), contribs, base)
        return out

    def interval_halfwidths(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Per outcome with interval members, each row's `probability_interval` half-width in
        calibrated log-odds (`models.interval`; margins only, no SHAP). Empty for older bundles."""
        if self.explainer is not None:
            from models.interval import halfwidth

            return {o: halfwidth(z, self.explainer.multipliers[o]) for o, z in self.explainer.member_logits(X).items()}
        import pandas as pd

        return self.model.interval_halfwidths_features(pd.DataFrame(X, columns=list(FEATURES)))

    def probabilities(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Calibrated probability per outcome for rows of the model matrix (eligibility not applied)."""
        return {o: v[0] for o, v in self._predict_explain(X, explain=False).items()}

    def score_records(self, records: list[dict], explain: bool = True, top_k: int = 5,
                      today: dt.date | None = None, detail: str = "groups") -> list[dict]:
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
        earlier, same_day = history_counts([r["person_id"] for r in records], dates)
        cols = Columns.from_records(records)
        X = feature_matrix(cols)
        scored = self._predict_explain(X, explain and top_k > 0)
        halfwidths = self.interval_halfwidths(X)  # probability_interval: null for outcomes without members
        applies = applicability(cols, self.outcomes)
        hidden = absent_history(X)
        results = []
        for i, r in enumerate(records):
            risks = {}
            for o in self.outcomes:
                ok, reason = bool(applies[o][0][i]), applies[o][1][i]
                if not ok:
                    risks[o] = {"probability": None, "applicable": False, "reason": reason, "category": None,
                                "contributions": []}
                    continue
                p, contribs, base = scored[o]
                # With an explanation, the probability is the sigmoid of base + contributions in
                # float64, so the two agree exactly (the booster's float32 margin differs by ~1e-6).
                prob = float(p[i]) if contribs is None else float(1.0 / (1.0 + np.exp(-(base[i] + contribs[i].sum()))))
                entry = {"probability": prob, "applicable": True, "reason": None,
                         "category": OUTCOME_SPECS[o].category(prob), "contributions": []}
                entry["probability_interval"] = pair_around(prob, float(halfwidths[o][i])) if o in halfwidths else None
                if contribs is not None and detail == "groups":
                    entry["contributions"], entry["base_log_odds"], entry["other_log_odds"] = grouped_contributions(
                        contribs[i], float(base[i]), X[i], hidden[i], top_k)
                elif contribs is not None:
                    row = contribs[i]
                    shown = np.flatnonzero(~hidden[i])
                    top = shown[np.argsort(-np.abs(row[shown]), kind="stable")[:top_k]]
                    entry["contributions"] = [
                        {"feature": FEATURES[j],
                         "value": None if np.isnan(X[i, j]) else _round(float(X[i, j]), 4),
                         "log_odds": float(row[j])}
                        for j in top
                    ]
                    # base + listed contributions + the rest = the calibrated log-odds of `probability`;
                    # the rest includes what absent history contributed.
                    entry["base_log_odds"] = float(base[i])
                    entry["other_log_odds"] = float(row.sum() - row[top].sum())
                risks[o] = entry
            missing = [k for k in KEY_INPUTS if r.get(k) is None]
            warnings = [f"{BY_NAME[k].label_en} ({k}) missing: estimates that use it are less precise"
                        for k in missing]
            if r.get("age") is None:
                warnings.append("age given only as a 5-year band: the band midpoint was used")
            if same_day[i]:
                # Allowed (a file may hold such rows too) but almost always a duplicate or a split
                # visit: say so, since one of them was read as the other's history.
                warnings.append(f"{int(same_day[i])} other checkup(s) of this person in the request have the same "
                                "exam_date: among them, the ones listed earlier were used as history of the later ones")
            stale = staleness(dates[i], today, self.stale_after_days)
            if stale is not None:
                warnings.append(stale)
            if self.synthetic:
                warnings.append(provenance.SYNTHETIC_WARNING)
            if any(v.get("applicable") and v.get("probability_interval") is None for v in risks.values()):
                warnings.append("this model version has no interval ensemble (saved before intervals existed): "
                                "probability_interval is null; retrain to get it")
            results.append({
                "person_id": r["person_id"],
                "exam_date": dates[i].isoformat(),
                "history_checkups": int(earlier[i]),
                "stale": stale is not None,
                "risks": risks,
                "warnings": warnings,
            })
        return results
