"""The one scoring and explanation path of a RiskModel: probabilities, intervals and SHAP values.

A RiskModel's boosters (each outcome's, then its interval members') are evaluated by one of two
backends with the same interface and the same numbers:

* ``"compiled"``: the numba kernel (`models.kernel`): bit-identical margins and exact float64
  TreeSHAP, all boosters of a request in one pass (microseconds per row);
* ``"booster"``: XGBoost itself (`predict(output_margin=True)`, `predict(pred_contribs=True)`).

`Engine.build` makes the choice, once per model: ``"auto"`` takes the compiled kernel and falls back
to the boosters, with a warning saying why, only when the kernel cannot be compiled (numba missing, a
booster it cannot reproduce). Whatever the backend, the outcome models' own heads (their blend and
calibration, `models.outcome`) turn margins and SHAP values into calibrated log-odds.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import xgboost as xgb

from models import interval as interval_
from models.outcome import Heads, OutcomeModel, sigmoid

Backend = Literal["auto", "compiled", "booster"]
BACKENDS: tuple[str, ...] = ("auto", "compiled", "booster")


class Trees(Protocol):
    """What a backend does: margins and (optionally) SHAP values of boosters `which` on rows X."""

    name: str

    def evaluate(
        self, X: np.ndarray, which: np.ndarray, shap: bool = False, threads: int = 1
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]: ...


class BoosterTrees:
    """The boosters themselves, as XGBoost evaluates them (`n_jobs` threads; `threads` is unused)."""

    name = "booster"

    def __init__(self, boosters: Sequence[xgb.Booster], feature_names: Sequence[str], n_jobs: int | None) -> None:
        self.boosters = list(boosters)
        self.feature_names = list(feature_names)
        self.n_jobs = n_jobs

    def evaluate(
        self, X: np.ndarray, which: np.ndarray, shap: bool = False, threads: int = 1
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        dm = xgb.DMatrix(X.astype(np.float32), feature_names=self.feature_names, nthread=self.n_jobs or -1)
        chosen = [self.boosters[b] for b in which]
        margin = np.empty((len(X), len(chosen)), dtype=np.float32)
        for q, b in enumerate(chosen):
            margin[:, q] = b.predict(dm, output_margin=True)
        if not shap:
            return margin, None, None
        c = [b.predict(dm, pred_contribs=True).astype(float) for b in chosen]
        return margin, np.stack([ci[:, :-1] for ci in c]), np.column_stack([ci[:, -1] for ci in c])


@dataclass(frozen=True)
class Scores:
    """`RiskModel.score` of n rows of the model matrix (eligibility not applied), per outcome:

    probability: calibrated one-year probabilities (n);
    contributions, base: with ``explain``, SHAP values in calibrated log-odds (n x features) and
        the base value (n); base + contributions add up to the calibrated log-odds of probability;
    halfwidth: with ``intervals``, the interval's half-width in calibrated log-odds (n), for the
        outcomes that have interval members (older bundles have none).
    """

    probability: dict[str, np.ndarray]
    contributions: dict[str, np.ndarray]
    base: dict[str, np.ndarray]
    halfwidth: dict[str, np.ndarray] | None

    def explanation(self, outcome: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(contributions, base) of an outcome scored with ``explain``, else None."""
        if outcome not in self.contributions:
            return None
        return self.contributions[outcome], self.base[outcome]

    def interval(self, outcome: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(low, high) nominal 95 % interval around `probability`, or None for an outcome without
        interval members (`models.interval`)."""
        if self.halfwidth is None:
            raise ValueError("score(..., intervals=True) gives intervals")
        half = self.halfwidth.get(outcome)
        return None if half is None else interval_.around(self.probability[outcome], half)


class Engine:
    """A RiskModel's outcome models behind one backend: `score` is the only way predictions are made."""

    def __init__(self, models: Mapping[str, OutcomeModel], trees: Trees) -> None:
        self.models = dict(models)
        self.trees = trees
        self.outcomes = tuple(self.models)
        self._main, self._members = _layout(self.models)
        self._multipliers = {
            o: m.interval_multiplier for o, m in self.models.items() if m.interval_multiplier is not None
        }
        self._all_main = np.arange(len(self.outcomes), dtype=np.int64)
        self._all_members = np.concatenate([*self._members.values(), np.zeros(0, dtype=np.int64)])
        # One head per booster, in the order of `all_boosters`.
        self.heads = Heads(
            [m.head() for m in self.models.values()] + [h for o in self._members for h in self.models[o].member_heads()]
        )

    @property
    def backend(self) -> str:
        return self.trees.name

    @classmethod
    def build(
        cls,
        models: Mapping[str, OutcomeModel],
        feature_names: Sequence[str],
        backend: Backend = "auto",
        n_jobs: int | None = None,
    ) -> Engine:
        """The engine of these outcome models: the compiled kernel unless `backend` says "booster",
        or "auto" finds that the kernel cannot be compiled."""
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
        boosters = all_boosters(models)
        if backend != "booster":
            try:
                from models.kernel import CompiledBoosters

                return cls(models, CompiledBoosters.compile(boosters))
            except (ImportError, ValueError) as e:
                if backend == "compiled":
                    raise
                warnings.warn(f"compiled kernel unavailable ({e}); scoring with the XGBoost boosters", stacklevel=3)
        return cls(models, BoosterTrees(boosters, feature_names, n_jobs))

    def score(
        self,
        X: np.ndarray,
        explain: bool = False,
        intervals: bool = False,
        outcomes: Iterable[str] | None = None,
        threads: int = 1,
    ) -> Scores:
        """Scores of the float64 model matrix X (n x features, C order); see `Scores`."""
        chosen = self.outcomes if outcomes is None else tuple(outcomes)
        which = self._all_main if outcomes is None else np.array([self._main[o] for o in chosen], dtype=np.int64)
        margin, contribs, bias = self.trees.evaluate(X, which, explain, threads)
        logits = self.heads.logits(margin, X, which)
        p = sigmoid(logits)
        probability = {o: p[:, q] for q, o in enumerate(chosen)}
        per: dict[str, np.ndarray] = {}
        base: dict[str, np.ndarray] = {}
        if contribs is not None and bias is not None:
            c, b = self.heads.explanation(contribs, bias, X, which)
            per = {o: c[q] for q, o in enumerate(chosen)}
            base = {o: b[:, q] for q, o in enumerate(chosen)}
        center = {o: logits[:, q] for q, o in enumerate(chosen)}
        half = self._halfwidths(X, chosen, center, threads) if intervals else None
        return Scores(probability, per, base, half)

    def _halfwidths(
        self, X: np.ndarray, outcomes: tuple[str, ...], center: dict[str, np.ndarray], threads: int
    ) -> dict[str, np.ndarray]:
        """Per outcome with members, the interval half-width around its logit `center`: members'
        margins only, no SHAP."""
        with_members = [o for o in outcomes if o in self._members]
        if not with_members:
            return {}
        which = (
            self._all_members
            if with_members == list(self._members)
            else np.concatenate([self._members[o] for o in with_members])
        )
        z = self.heads.logits(self.trees.evaluate(X, which, False, threads)[0], X, which)
        widths = {len(self._members[o]) for o in with_members}
        if len(widths) == 1:  # as many members each: every outcome's spread in one pass
            mults = np.array([self._multipliers[o] for o in with_members])
            mid = np.column_stack([center[o] for o in with_members])
            half = interval_.halfwidth(z.reshape(len(X), len(with_members), widths.pop()), mults, mid)
            return {o: half[:, g] for g, o in enumerate(with_members)}
        out, col = {}, 0
        for o in with_members:
            width = len(self._members[o])
            out[o] = interval_.halfwidth(z[:, col : col + width], self._multipliers[o], center[o])
            col += width
        return out


def all_boosters(models: Mapping[str, OutcomeModel]) -> list[xgb.Booster]:
    """Every outcome's booster in outcome order, then the interval members of the outcomes that have
    an interval (at least two members), outcome by outcome: the positions `Engine` addresses."""
    members = [mm.booster for m in models.values() if m.interval_multiplier is not None for mm in m.members]
    return [m.booster for m in models.values()] + members


def _layout(models: Mapping[str, OutcomeModel]) -> tuple[dict[str, int], dict[str, np.ndarray]]:
    """Positions in `all_boosters`: each outcome's booster, and its members' (outcomes with an interval)."""
    main = {o: i for i, o in enumerate(models)}
    members, pos = {}, len(models)
    for o, m in models.items():
        if m.interval_multiplier is not None:
            members[o] = np.arange(pos, pos + len(m.members), dtype=np.int64)
            pos += len(m.members)
    return main, members
