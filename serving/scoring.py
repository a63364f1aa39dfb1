"""Validated checkups in, the /score response out: probabilities, applicability with reasons,
categories, top-k SHAP contributions and warnings. Shared by the HTTP routes, CDS Hooks and FHIR."""

from __future__ import annotations

import datetime as dt

import numpy as np

from features.derive import FEATURES, Columns, feature_matrix
from features.eligibility import applicability
from features.schema import BY_NAME, KEY_INPUTS
from models.bundle import RiskModel
from models.outcomes import OUTCOME_SPECS


def _round(x: float, digits: int) -> float:
    return float(round(x, digits))


class Scorer:
    """Holds one model version and its compiled explainer; built once per worker."""

    def __init__(self, model: RiskModel, version: str) -> None:
        self.model = model
        self.version = version
        self.outcomes = tuple(model.models_)
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

    def probabilities(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Calibrated probability per outcome for rows of the model matrix (eligibility not applied)."""
        return {o: v[0] for o, v in self._predict_explain(X, explain=False).items()}

    def score_records(self, records: list[dict], explain: bool = True, top_k: int = 5) -> list[dict]:
        """Records must already be valid (see serving.schemas); returns one result per record."""
        today = dt.date.today()
        for r in records:
            if r.get("exam_date") is None:
                r["exam_date"] = today
        cols = Columns.from_records(records)
        X = feature_matrix(cols)
        scored = self._predict_explain(X, explain and top_k > 0)
        applies = applicability(cols, self.outcomes)
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
                if contribs is not None:
                    row = contribs[i]
                    top = np.argsort(-np.abs(row), kind="stable")[:top_k]
                    entry["contributions"] = [
                        {"feature": FEATURES[j],
                         "value": None if np.isnan(X[i, j]) else _round(float(X[i, j]), 4),
                         "log_odds": float(row[j])}
                        for j in top
                    ]
                    # base + listed contributions + the rest = the calibrated log-odds of `probability`.
                    entry["base_log_odds"] = float(base[i])
                    entry["other_log_odds"] = float(row.sum() - row[top].sum())
                risks[o] = entry
            missing = [k for k in KEY_INPUTS if r.get(k) is None]
            warnings = [f"{BY_NAME[k].label_en} ({k}) missing: estimates that use it are less precise"
                        for k in missing]
            if r.get("age") is None:
                warnings.append("age given only as a 5-year band: the band midpoint was used")
            results.append({
                "person_id": r["person_id"],
                "exam_date": r["exam_date"].isoformat() if hasattr(r["exam_date"], "isoformat") else r["exam_date"],
                "risks": risks,
                "warnings": warnings,
            })
        return results
