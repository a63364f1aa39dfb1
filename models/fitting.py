"""How one outcome is fitted: setting and rounds, blend with the linear partner, calibration, members.

With many events: one train / validation / calibration split of persons chooses the setting,
rounds (early stopping on the validation persons) and blend, and the calibration is fit on the
split model's predictions for the validation persons (which also chose its rounds, setting and
blend) and the calibration persons; the split model was fitted on neither.
With few events (small real cohorts) k-fold cross-validation by person chooses the setting, rounds
and blend on out-of-fold predictions, and the calibration is fit on those same out-of-fold
predictions. Either way the final booster and partner are then refit on all rows with what was
chosen, so the persons set aside to choose and calibrate are not lost to the model (README,
"Models"). Then the interval members (`models.interval`) are fit on random halves of the persons.

Fitting reports its progress to an optional hook, `progress(outcome, step, done, total)`:

* ``"boosting rounds"``: the setting search; done counts rounds over every setting and fold, and a
  training that stops early counts its unused rounds when it stops, so done reaches total;
* ``"refit rounds"``: the final model refit on all rows;
* ``"interval members"``: members fitted so far.

Rounds are reported every `PROGRESS_EVERY` rounds (when a training on a Dask cluster ends).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import xgboost as xgb

from features.derive import FEATURES
from models import interval as interval_
from models.logistic import LogisticRisk
from models.outcome import Member, OutcomeModel, fit_platt, sigmoid
from models.outcomes import Outcome
from models.sample_size import riley_binary

ProgressHook = Callable[[str, str, int, int], None]
PROGRESS_EVERY = 25  # boosting rounds between progress reports
BLEND_WEIGHTS = (1.0, 0.75, 0.5, 0.25, 0.0)

Folds = list[tuple[np.ndarray, np.ndarray]]


class SampleSizeWarning(UserWarning):
    """An outcome was fit on fewer rows than Riley et al.'s minimum sample size."""


class EventRateWarning(UserWarning):
    """An outcome's labels hold far more events than first diagnoses within one year could."""


# Labels with more events than this many times an outcome's yearly reference rate (the first cut of
# its risk categories) are not one-year incidence: a ten-year or prevalent-disease label would put
# nearly every risk in the top category. Ten leaves room for cohorts of old or high-risk people.
EVENT_RATE_LIMIT = 10.0


@dataclass(frozen=True)
class TrainingRows:
    """The training matrix, every record and then the history-dropout copies, and per row what the
    splits need: float32 for the boosters, float64 for the logistic partners."""

    Xv: np.ndarray
    Xf: np.ndarray
    role: np.ndarray  # "train" / "valid" / "calib", by person
    bucket: np.ndarray  # the person's bucket 0..99 (cross-validation folds)
    original: np.ndarray  # the record itself, not a history-dropout copy
    person: np.ndarray  # a code per person: the unit the interval members resample


class Progress:
    """One outcome's progress, reported to the hook as `hook(outcome, step, done, total)`."""

    def __init__(self, hook: ProgressHook | None, outcome: str) -> None:
        self.hook = hook
        self.outcome = outcome
        self.step, self.done, self.total = "", 0, 0

    def begin(self, step: str, total: int) -> None:
        self.step, self.done, self.total = step, 0, total
        self._report()

    def add(self, n: int) -> None:
        self.done = min(self.total, self.done + n)
        self._report()

    def _report(self) -> None:
        if self.hook is not None:
            self.hook(self.outcome, self.step, self.done, self.total)

    def callbacks(self, budget: int) -> list[xgb.callback.TrainingCallback]:
        """XGBoost callbacks reporting one training of at most `budget` rounds (none without a hook)."""
        return [] if self.hook is None else [_RoundsReport(self, budget)]


class _RoundsReport(xgb.callback.TrainingCallback):
    def __init__(self, progress: Progress, budget: int) -> None:
        super().__init__()
        self.progress, self.budget, self.seen = progress, budget, 0

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        if (epoch + 1) % PROGRESS_EVERY == 0:
            self.progress.add(epoch + 1 - self.seen)
            self.seen = epoch + 1
        return False  # never stops training

    def after_training(self, model: Any) -> Any:
        self.progress.add(self.budget - self.seen)  # rounds early stopping left unused
        return model


# Fewer events than this (or no non-events) and an outcome cannot be fit at all.
MIN_EVENTS_TO_FIT = 10


def cannot_fit(rows: int, events: int) -> bool:
    """Whether an outcome with `events` among `rows` eligible, labelled records is too thin to fit."""
    return events < MIN_EVENTS_TO_FIT or events == rows


class FitSettings(Protocol):
    """The settings fitting reads (a `RiskModel`'s parameters)."""

    learning_rate: float
    max_rounds: int
    early_stopping_rounds: int
    grid: tuple[dict, ...]
    linear_max_rows: int
    cv_below_events: int
    cv_folds: int
    interval_members: int
    random_state: int
    n_jobs: int | None


class OutcomeFitter:
    """Fits outcomes with a RiskModel's settings on one set of training rows, locally or with
    xgboost.dask on `client` (a dask.distributed Client) across its workers."""

    def __init__(
        self, settings: FitSettings, data: TrainingRows, client: Any = None, progress: ProgressHook | None = None
    ) -> None:
        self.s = settings
        self.data = data
        self.client = client
        self.hook = progress

    def fit(self, spec: Outcome, y: np.ndarray, rows: np.ndarray) -> OutcomeModel:
        """The outcome model of labels `y` on the training rows where `rows` holds (per training row)."""
        progress = Progress(self.hook, spec.name)
        n_rows, events = self._count_events(spec.name, y, rows)
        sample_size = self._sample_size(spec.name, n_rows, events)
        event_rate = self._event_rate(spec, n_rows, events)
        idx = np.flatnonzero(rows)
        cv = events < self.s.cv_below_events
        folds, calib_idx = self._folds(spec.name, idx, y, cv)
        constraints = spec.monotone_constraints(FEATURES)
        base = self._base_params(constraints, y[idx].mean())
        setting, rounds, boosters, tried = self._select_setting(base, y, folds, progress)
        weight, blends, m_oof, y_oof, linears = self._choose_blend(boosters, folds, y, constraints)
        params = {**base, **setting}
        held_margin, held_y = m_oof(weight), y_oof
        if calib_idx is not None:  # split mode: the calibration persons join the validation persons
            held_margin = np.concatenate(
                [held_margin, self._split_margin(boosters[0], linears[0], weight, y, calib_idx)]
            )
            held_y = np.concatenate([held_y, y[calib_idx]])
        model = self._refit_on_all_rows(params, rounds, y, idx, weight, held_margin, held_y, constraints, progress)
        model.members = self._fit_members(spec.name, params, model, y, idx, constraints, progress)
        model.info = _describe(self.s.cv_folds, cv, model, n_rows, events, sample_size, setting, tried, blends)
        model.info["event_rate"] = event_rate
        return model

    # -- the steps, in order ---------------------------------------------------------------------

    def _count_events(self, outcome: str, y: np.ndarray, rows: np.ndarray) -> tuple[int, int]:
        """(rows, events) among the records themselves (history-dropout copies do not count)."""
        real = rows & self.data.original
        events, n_rows = int(y[real].sum()), int(real.sum())
        if cannot_fit(n_rows, events):
            raise ValueError(f"{outcome}: too few events to fit ({n_rows} rows, {events} events)")
        return n_rows, events

    def _sample_size(self, outcome: str, rows: int, events: int) -> dict:
        """Riley et al.'s minimum size for this outcome (candidate parameters = features), with a
        warning when the data are smaller."""
        need = riley_binary(len(FEATURES), events / rows)
        out = {
            **need.as_dict(),
            "rows": rows,
            "events": events,
            "enough": rows >= need.required_n,
            "method": "Riley et al., BMJ 2020;368:m441 (binary outcome; R2cs 15% of its maximum)",
        }
        if rows < need.required_n:
            warnings.warn(
                f"{outcome}: {rows:,} training rows ({events:,} events) are fewer than the {need.required_n:,} rows "
                f"(~{need.required_events:,} events) Riley et al. require for {len(FEATURES)} candidate parameters at "
                f"prevalence {events / rows:.2%}; expect optimism and check calibration on new data",
                SampleSizeWarning,
                stacklevel=4,  # the caller of RiskModel.fit
            )
        return out

    def _event_rate(self, spec: Outcome, rows: int, events: int) -> dict:
        """The labels' event rate against the outcome's yearly reference rate, with a warning when it is
        more than `EVENT_RATE_LIMIT` times that rate."""
        rate, reference = events / rows, spec.category_cuts[0]
        exceeds = rate > EVENT_RATE_LIMIT * reference
        out = {"rate": rate, "reference": reference, "times": rate / reference, "limit": EVENT_RATE_LIMIT}
        out["exceeds"] = exceeds  # the one judgement, read again by the model card
        if exceeds:
            warnings.warn(
                f"{spec.name}: {rate:.1%} of the {rows:,} labelled rows are events, {rate / reference:.0f} times the "
                f"yearly rate of about {reference:.1%} the risk categories assume; check that {spec.label} marks a "
                "first diagnosis within 365 days (a longer horizon or prevalent disease puts nearly every one-year "
                "risk in the top category)",
                EventRateWarning,
                stacklevel=4,  # the caller of RiskModel.fit
            )
        return out

    def _folds(self, outcome: str, idx: np.ndarray, y: np.ndarray, cv: bool) -> tuple[Folds, np.ndarray | None]:
        """(training, evaluation) row pairs by person, and the calibration persons' rows (split mode;
        None in the cross-validated mode, whose calibration uses the out-of-fold rows)."""
        calib_idx = None
        if cv:
            fold = self.data.bucket[idx] % self.s.cv_folds
            folds = [(idx[fold != k], idx[fold == k]) for k in range(self.s.cv_folds)]
        else:
            role = self.data.role
            folds = [(idx[role[idx] == "train"], idx[role[idx] == "valid"])]
            calib_idx = idx[role[idx] == "calib"]
        for tr, ev in folds:
            for part, name in ((tr, "training"), (ev, "validation")):
                if not 0 < y[part].sum() < len(part):
                    raise ValueError(f"{outcome}: a {name} split of persons has no events; more data are needed")
        return folds, calib_idx

    def _base_params(self, constraints: tuple[int, ...], prevalence: float) -> dict:
        return {
            "objective": "binary:logistic",
            "eval_metric": "logloss",
            "tree_method": "hist",
            "learning_rate": self.s.learning_rate,
            "monotone_constraints": "(" + ",".join(map(str, constraints)) + ")",
            "base_score": float(np.clip(prevalence, 1e-4, 1 - 1e-4)),
            "seed": self.s.random_state,
            "nthread": self.s.n_jobs or 0,
            "max_bin": 128,
        }

    def _select_setting(
        self, base: dict, y: np.ndarray, folds: Folds, progress: Progress
    ) -> tuple[dict, int, list[xgb.Booster], list[dict]]:
        """The grid setting with the best mean validation log-loss: (setting, mean best rounds,
        its boosters per fold, every setting's scores)."""
        progress.begin("boosting rounds", len(self.s.grid) * len(folds) * self.s.max_rounds)
        best, tried = None, []
        for setting in self.s.grid:
            boosters = [self._train({**base, **setting}, y, tr, ev, self.s.max_rounds, progress) for tr, ev in folds]
            score = float(np.mean([b.best_score for b in boosters]))
            rounds = int(round(np.mean([b.best_iteration + 1 for b in boosters])))
            tried.append({**setting, "valid_logloss": score, "rounds": rounds})
            if best is None or score < best[0]:
                best = (score, setting, rounds, boosters)
        assert best is not None  # the grid is never empty
        _, setting, rounds, boosters = best
        return setting, rounds, boosters, tried

    def _choose_blend(
        self, boosters: list[xgb.Booster], folds: Folds, y: np.ndarray, constraints: tuple[int, ...]
    ) -> tuple:
        """Blend weight of booster vs linear partner on out-of-fold margins.

        Returns (weight, every weight's score, out-of-fold blended margin as a function of the weight,
        out-of-fold labels, the linear partner of each fold)."""
        Xf = self.data.Xf
        oof_idx = np.concatenate([ev for _, ev in folds])
        m_boost = np.concatenate(
            [
                b.predict(
                    self._labelled_dmatrix(y, ev), output_margin=True, iteration_range=(0, b.best_iteration + 1)
                ).astype(float)
                for b, (_, ev) in zip(boosters, folds, strict=True)
            ]
        )
        linears = [self._fit_linear(y, tr, constraints) for tr, _ in folds]
        m_lin = np.concatenate([lin.margin(Xf[ev]) for lin, (_, ev) in zip(linears, folds, strict=True)])
        y_oof = y[oof_idx]

        def m_oof(w: float) -> np.ndarray:
            return w * m_boost + (1 - w) * m_lin

        blends = []
        for w in BLEND_WEIGHTS:
            a, b = fit_platt(m_oof(w), y_oof)
            blends.append({"weight": w, "valid_logloss": _logloss(y_oof, sigmoid(a + b * m_oof(w)))})
        best_blend = min(blends, key=lambda r: r["valid_logloss"])
        # Keep the boosted model alone unless the blend is clearly better (not noise).
        weight = best_blend["weight"] if best_blend["valid_logloss"] < blends[0]["valid_logloss"] * 0.999 else 1.0
        return weight, blends, m_oof, y_oof, linears

    def _split_margin(
        self, booster: xgb.Booster, linear: LogisticRisk, weight: float, y: np.ndarray, rows: np.ndarray
    ) -> np.ndarray:
        """Split mode: the split's booster (cut at its best round) blended with the split's partner,
        on rows of persons neither was fitted on, as `_choose_blend` blends the validation rows."""
        margin = booster.predict(
            self._labelled_dmatrix(y, rows), output_margin=True, iteration_range=(0, booster.best_iteration + 1)
        ).astype(float)
        return weight * margin + (1.0 - weight) * linear.margin(self.data.Xf[rows])

    def _refit_on_all_rows(
        self,
        params: dict,
        rounds: int,
        y: np.ndarray,
        idx: np.ndarray,
        weight: float,
        held_margin: np.ndarray,
        held_y: np.ndarray,
        constraints: tuple[int, ...],
        progress: Progress,
    ) -> OutcomeModel:
        """The calibration fitted on the fold or split models' predictions for persons they were not
        fitted on, then applied to a booster and partner refit on all rows with the chosen setting,
        rounds and blend (the map assumes the refit's margins are scaled like theirs)."""
        a, b = fit_platt(held_margin, held_y)
        progress.begin("refit rounds", rounds)
        booster = self._train(params, y, idx, None, rounds, progress)
        linear = self._fit_linear(y, idx, constraints)
        return OutcomeModel(booster=booster, calib_a=a, calib_b=b, linear=linear, weight=weight)

    def _fit_members(
        self,
        outcome: str,
        params: dict,
        model: OutcomeModel,
        y: np.ndarray,
        fit_idx: np.ndarray,
        constraints: tuple[int, ...],
        progress: Progress,
    ) -> list[Member]:
        """`interval_members` members on random halves of the persons of `fit_idx` (the main booster's
        training rows), same setting and rounds, no early stopping (see `models.interval`).

        Each member refits the Platt calibration, as the main model does, on persons it was not fit
        on: the other half of `fit_idx`, the persons the member did not see. The calibration's own
        uncertainty is then part of the members' spread (it is the larger part where events are
        few)."""
        if self.s.interval_members < 2:
            return []
        rounds = model.booster.num_boosted_rounds()
        # A seed per outcome and member, reproducible and independent of the outcome order.
        key = int.from_bytes(hashlib.blake2b(outcome.encode(), digest_size=4).digest(), "little")
        progress.begin("interval members", self.s.interval_members)
        members = []
        for j in range(self.s.interval_members):
            rng = np.random.default_rng([self.s.random_state, key, j])
            part = self._half_with_events(outcome, fit_idx, y, rng)
            booster = self._train({**params, "seed": self.s.random_state + 1 + j}, y, part, None, rounds)
            linear = self._fit_linear(y, part, constraints) if model.blends else None
            member = Member(booster=booster, calib_a=model.calib_a, calib_b=model.calib_b, linear=linear)
            cal = np.setdiff1d(fit_idx, part)
            if 0 < y[cal].sum() < len(cal):
                margin = booster.predict(self._labelled_dmatrix(y, cal), output_margin=True)
                member.calib_a, member.calib_b = fit_platt(model.blend(margin, self.data.Xf[cal], linear), y[cal])
            members.append(member)
            progress.add(1)
        return members

    # -- helpers ---------------------------------------------------------------------------------

    def _half_with_events(self, outcome: str, idx: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for _ in range(5):  # a half without events (or without non-events) is drawn again
            part = self._half_of_persons(idx, rng)
            if 0 < y[part].sum() < len(part):
                return part
        raise ValueError(f"{outcome}: half-samples of persons have no events; more data are needed")

    def _half_of_persons(self, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The rows of `idx` that belong to a random `SUBSAMPLE` share of its persons (no replacement)."""
        person = self.data.person
        units = np.unique(person[idx])
        take = max(1, int(round(interval_.SUBSAMPLE * len(units))))
        chosen = rng.choice(units, size=take, replace=False)
        return idx[np.isin(person[idx], chosen)]

    def _labelled_dmatrix(self, y: np.ndarray, part: np.ndarray) -> xgb.DMatrix:
        return xgb.DMatrix(self.data.Xv[part], label=y[part], feature_names=list(FEATURES), nthread=self.s.n_jobs or -1)

    def _fit_linear(self, y: np.ndarray, part: np.ndarray, constraints: tuple[int, ...]) -> LogisticRisk:
        if len(part) > self.s.linear_max_rows:
            rng = np.random.default_rng(self.s.random_state)
            part = np.sort(rng.choice(part, self.s.linear_max_rows, replace=False))
        return LogisticRisk(monotone=constraints).fit(self.data.Xf[part], y[part])

    def _train(
        self,
        params: dict,
        y: np.ndarray,
        tr: np.ndarray,
        ev: np.ndarray | None,
        rounds: int,
        progress: Progress | None = None,
    ) -> xgb.Booster:
        """One boosted model, with early stopping on `ev` when given; locally or on the Dask client."""
        if self.client is not None:
            booster = self._train_dask(params, y, tr, ev, rounds)
            if progress is not None:
                progress.add(rounds)
            return booster
        Xv = self.data.Xv
        evals = [(xgb.DMatrix(Xv[ev], label=y[ev], feature_names=list(FEATURES)), "valid")] if ev is not None else []
        return xgb.train(
            params,
            xgb.DMatrix(Xv[tr], label=y[tr], feature_names=list(FEATURES)),
            num_boost_round=rounds,
            evals=evals,
            early_stopping_rounds=self.s.early_stopping_rounds if ev is not None else None,
            verbose_eval=False,
            callbacks=progress.callbacks(rounds) if progress is not None else None,
        )

    def _train_dask(
        self, params: dict, y: np.ndarray, tr: np.ndarray, ev: np.ndarray | None, rounds: int
    ) -> xgb.Booster:
        import dask.array as da
        import xgboost.dask as dxgb

        Xv = self.data.Xv
        parts = max(1, len(self.client.scheduler_info()["workers"]))

        def dmatrix(part: np.ndarray) -> Any:
            chunk = max(1, -(-len(part) // parts))
            return dxgb.DaskDMatrix(
                self.client,
                da.from_array(Xv[part], chunks=(chunk, -1)),
                da.from_array(y[part], chunks=chunk),
                feature_names=list(FEATURES),
            )

        out = dxgb.train(
            self.client,
            params,
            dmatrix(tr),
            num_boost_round=rounds,
            evals=[(dmatrix(ev), "valid")] if ev is not None else None,
            early_stopping_rounds=self.s.early_stopping_rounds if ev is not None else None,
            verbose_eval=False,
        )
        booster = out["booster"]
        if ev is not None:
            history = out["history"]["valid"]["logloss"]
            best = int(np.argmin(history))
            booster.set_attr(best_iteration=str(best), best_score=str(history[best]))
        return booster


def _logloss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _describe(
    cv_folds: int,
    cv: bool,
    model: OutcomeModel,
    n_rows: int,
    events: int,
    sample_size: dict,
    setting: dict,
    tried: list[dict],
    blends: list[dict],
) -> dict:
    """The outcome's `info`: how it was fitted and what was chosen, as the manifest and MLflow show it."""
    weight = model.weight
    return {
        "mode": (
            f"{cv_folds}-fold cross-validation by person: setting, rounds and blend chosen and the "
            "calibration fitted on out-of-fold predictions, final model refit on all rows (calibration "
            "is cross-validated, not held out)"
        )
        if cv
        else (
            "train/validation/calibration split of persons: setting, rounds and blend chosen on the split, the "
            "calibration fitted on the split model's predictions for the validation persons (which also chose "
            "them) and the calibration persons, final model refit on all rows (calibration is held out from "
            "the split model, not from the final one)"
        ),
        "calibration": "cross-validated (out-of-fold)" if cv else "split (validation and calibration persons)",
        "rows": n_rows,
        "events": events,
        "sample_size": sample_size,
        "setting": setting,
        "tried": tried,
        "blends": blends,
        "weight": weight,
        "rounds": model.booster.num_boosted_rounds(),
        "interval": (
            {
                "members": len(model.members),
                "share": interval_.SUBSAMPLE,
                "level": interval_.LEVEL,
                "multiplier": model.interval_multiplier,
                "method": interval_.METHOD,
            }
            if model.members
            else None
        ),
        "choice": (
            "gradient boosting"
            if weight == 1.0
            else "logistic regression (ranked better on validation)"
            if weight == 0.0
            else f"blend: {weight:.2f} x gradient boosting + {1 - weight:.2f} x logistic regression"
        ),
    }
