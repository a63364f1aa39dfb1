"""RiskModel: one calibrated gradient-boosted model per outcome, in one bundle.

Each outcome's model is an XGBoost booster fit on that outcome's eligible rows only, with early
stopping on a validation split of persons, clinically certain monotone constraints, and a
logistic (Platt) recalibration of its margin fit on a third, held-out split of persons. Because the
recalibration is affine in log-odds, SHAP contributions stay exactly additive after calibration:
calibrated log-odds = a + b * (bias + sum(contributions)).

History dropout: a checkup may be scored with or without the person's earlier checkups (a request
may send the current one alone). Every training row with history is also used once with all
longitudinal features missing, in the same split of persons, so early stopping and calibration see
both kinds and a checkup scored alone is calibrated too.

No class reweighting: reweighting distorts probabilities, and with 0.3-8 % event rates the
log-loss objective with early stopping already ranks and calibrates well.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import xgboost as xgb

from features.derive import FEATURES, age_band, build_features, is_male
from features.eligibility import eligibility
from features.schema import OUTCOMES
from models.logistic import LogisticRisk
from models import interval as interval_
from models import reference
from models.outcomes import OUTCOME_SPECS
from models import provenance
from models.sample_size import riley_binary

FORMAT_VERSION = 1
REFERENCE_FILE = "reference.json"
PERSONS_FILE = "trained_persons.npy"


class SampleSizeWarning(UserWarning):
    """An outcome was fit on fewer rows than Riley et al.'s minimum sample size."""


def person_fold(person_id: pd.Series, seed: int, buckets: int = 100) -> np.ndarray:
    """Stable bucket 0..buckets-1 per person: splits by person, never by row, reproducibly."""
    salt = str(seed).encode()
    codes = person_id.astype(str).to_numpy(dtype=object)
    uniq, inverse = np.unique(codes, return_inverse=True)
    h = np.fromiter(
        (int.from_bytes(hashlib.blake2b(u.encode(), digest_size=4, salt=salt[:16]).digest(), "little") for u in uniq),
        dtype=np.uint64,
        count=len(uniq),
    )
    return (h % buckets).astype(int)[inverse]


def person_hashes(person_id: pd.Series, salt: bytes) -> np.ndarray:
    """8-byte salted blake2b of each person ID (as text, like `person_fold`), as uint64 per row."""
    codes = person_id.astype(str).to_numpy(dtype=object)
    uniq, inverse = np.unique(codes, return_inverse=True)
    digests = b"".join(hashlib.blake2b(u.encode(), digest_size=8, salt=salt).digest() for u in uniq)
    return np.frombuffer(digests, dtype="<u8").astype(np.uint64)[inverse]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logloss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def fit_platt(margin: np.ndarray, y: np.ndarray, iterations: int = 50) -> tuple[float, float]:
    """Logistic recalibration y ~ a + b * margin by Newton's method; b is kept positive so that
    calibration never reverses the model's ranking (monotone constraints survive)."""
    a, b = 0.0, 1.0
    X = np.column_stack([np.ones_like(margin), margin])
    for _ in range(iterations):
        p = _sigmoid(a + b * margin)
        w = p * (1 - p) + 1e-12
        grad = X.T @ (y - p)
        hess = (X * w[:, None]).T @ X + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        a, b = a + step[0], b + step[1]
        if np.abs(step).max() < 1e-10:
            break
    return float(a), float(max(b, 1e-3))


@dataclass
class Member:
    """One resampled member of an outcome's interval ensemble (see `models.interval`): a booster fit
    on half of the persons with the main model's setting and rounds, the logistic partner refit on
    that half (None when the main model does not blend), and its own Platt calibration."""

    booster: xgb.Booster
    calib_a: float
    calib_b: float
    linear: LogisticRisk | None = None


@dataclass
class OutcomeModel:
    """A fitted outcome: booster, optional linear partner, recalibration, and how it was chosen.

    Raw log-odds = weight * booster margin + (1 - weight) * linear margin; the probability is
    sigmoid(calib_a + calib_b * raw). weight is 1 unless the linear model helped on validation.
    """

    booster: xgb.Booster
    calib_a: float
    calib_b: float
    linear: LogisticRisk
    weight: float = 1.0
    info: dict = field(default_factory=dict)
    # The interval ensemble (empty in bundles saved before it existed: no interval).
    members: list[Member] = field(default_factory=list)

    def member_logits(self, dmatrix: xgb.DMatrix, X: np.ndarray) -> np.ndarray:
        """Calibrated log-odds of every member (n x B): same blend weight, each member's own partner
        (the main model's where the member has none) and calibration."""
        out = np.empty((X.shape[0], len(self.members)))
        for j, m in enumerate(self.members):
            margin = m.booster.predict(dmatrix, output_margin=True).astype(float)
            if self.weight < 1.0:
                partner = m.linear if m.linear is not None else self.linear
                margin = self.weight * margin + (1.0 - self.weight) * partner.margin(X)
            out[:, j] = m.calib_a + m.calib_b * margin
        return out

    @property
    def interval_multiplier(self) -> float | None:
        """Half-width of the interval in member standard deviations, or None without members."""
        if len(self.members) < 2:
            return None
        return interval_.multiplier(len(self.members))

    def probability_interval(self, dmatrix: xgb.DMatrix, X: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(low, high) nominal 95% interval around `probability`, or None without members."""
        mult = self.interval_multiplier
        if mult is None:
            return None
        return interval_.interval(self.probability(dmatrix, X), self.member_logits(dmatrix, X), mult)

    def raw_margin(self, dmatrix: xgb.DMatrix, X: np.ndarray) -> np.ndarray:
        margin = self.booster.predict(dmatrix, output_margin=True).astype(float)
        if self.weight < 1.0:
            margin = self.weight * margin + (1.0 - self.weight) * self.linear.margin(X)
        return margin

    def probability(self, dmatrix: xgb.DMatrix, X: np.ndarray) -> np.ndarray:
        return _sigmoid(self.calib_a + self.calib_b * self.raw_margin(dmatrix, X))

    def contributions(self, dmatrix: xgb.DMatrix, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature calibrated log-odds and base value; rows add up to the calibrated logit."""
        c = self.booster.predict(dmatrix, pred_contribs=True).astype(float)
        per, base = c[:, :-1], c[:, -1]
        if self.weight < 1.0:
            lin, lin_base = self.linear.contributions(X)
            per = self.weight * per + (1.0 - self.weight) * lin
            base = self.weight * base + (1.0 - self.weight) * lin_base
        return self.calib_b * per, self.calib_a + self.calib_b * base


DEFAULT_GRID: tuple[dict, ...] = (
    {"max_depth": 3, "min_child_weight": 5.0, "reg_lambda": 5.0},
    {"max_depth": 5, "min_child_weight": 10.0, "reg_lambda": 5.0},
    {"max_depth": 4, "min_child_weight": 50.0, "reg_lambda": 20.0, "subsample": 0.8, "colsample_bynode": 0.8},
)


class RiskModel:
    """Calibrated XGBoost models, one per outcome, behind one fit/predict/explain interface.

    Parameters are stored untouched (scikit-learn convention); learned state ends in `_`.
    `grid` is the small set of regularisation settings tried per outcome; the one with the best
    validation log-loss wins, so small data get the heavily regularised setting.
    `history_dropout` is the share of training rows with history that are also used without it
    (0 turns history dropout off).
    """

    def __init__(
        self,
        outcomes: tuple[str, ...] = OUTCOMES,
        learning_rate: float = 0.08,
        max_rounds: int = 2000,
        early_stopping_rounds: int = 50,
        grid: tuple[dict, ...] = DEFAULT_GRID,
        valid_share: float = 0.15,
        calibration_share: float = 0.15,
        linear_max_rows: int = 200_000,
        cv_below_events: int = 1500,
        cv_folds: int = 5,
        history_dropout: float = 1.0,
        interval_members: int = 6,
        random_state: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.outcomes = outcomes
        self.learning_rate = learning_rate
        self.max_rounds = max_rounds
        self.early_stopping_rounds = early_stopping_rounds
        self.grid = grid
        self.valid_share = valid_share
        self.calibration_share = calibration_share
        self.linear_max_rows = linear_max_rows
        self.cv_below_events = cv_below_events
        self.cv_folds = cv_folds
        self.history_dropout = history_dropout
        self.interval_members = interval_members
        self.random_state = random_state
        self.n_jobs = n_jobs

    # -- fitting ---------------------------------------------------------------------------------

    def fit(self, records: pd.DataFrame, progress: Callable[[str], None] | None = None,
            client=None) -> "RiskModel":
        """Fit every outcome on its eligible, labelled rows of a canonical frame.

        `client`: a dask.distributed Client; the boosted models are then trained with xgboost.dask
        across its workers (same algorithm and settings), for data that outgrow one machine.
        """
        self._client = client
        X = build_features(records)
        eligible = eligibility(records, self.outcomes)
        bucket = person_fold(records["person_id"], self.random_state)
        valid_cut = int(round(100 * self.valid_share))
        calib_cut = valid_cut + int(round(100 * self.calibration_share))
        role = np.where(bucket < valid_cut, "valid", np.where(bucket < calib_cut, "calib", "train"))
        # Training rows: every record, then the history-dropout copies (same person, same split),
        # whose features are built exactly as for a checkup sent alone.
        X_alone = build_features(records.drop(columns=["person_id"]))
        src, copy = self._history_dropout_rows(X, X_alone)
        Xt = pd.concat([X, X_alone.iloc[src[copy]]], ignore_index=True)
        # Person of each row (for the interval members' resampling of persons).
        person = np.unique(records["person_id"].astype(str).to_numpy(), return_inverse=True)[1]

        self.feature_names_ = FEATURES
        self.models_: dict[str, OutcomeModel] = {}
        fitted_rows: dict[str, np.ndarray] = {}
        for outcome in self.outcomes:
            spec = OUTCOME_SPECS[outcome]
            if spec.label not in records.columns:
                raise ValueError(f"training data have no label column {spec.label!r}")
            y = pd.to_numeric(records[spec.label], errors="coerce").to_numpy(dtype=float)
            rows = eligible[outcome].to_numpy() & ~np.isnan(y)
            if progress:
                progress(outcome)
            self.models_[outcome] = self._fit_outcome(spec, Xt, y[src], rows[src], role[src], bucket[src], ~copy,
                                                      person=person[src])
            self.models_[outcome].info["history_dropout_rows"] = int((rows[src] & copy).sum())
            fitted_rows[outcome] = rows
        del self._client  # a runtime resource, not learned state
        self.reference_ = self._reference_tables(records, X, fitted_rows)
        # Who was trained on, without keeping IDs: salted hashes, a fresh salt per bundle, so the
        # bundle answers "was this person in training?" for a given ID and reveals nothing else.
        self.person_salt_ = secrets.token_bytes(16)
        self.trained_persons_ = np.unique(person_hashes(records["person_id"], self.person_salt_))
        # Synthetic or real, persons, checkups, exam dates: a synthetic model must say so wherever it speaks.
        self.training_data_ = provenance.detect(records)
        return self

    def _history_dropout_rows(self, X: pd.DataFrame, X_alone: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(source row of each training row, whether it is a copy without history).

        Copies are made of a seeded random `history_dropout` share of the rows whose history
        changes their features (the others already look like a checkup scored alone)."""
        n = len(X)
        a, b = X.to_numpy(), X_alone.to_numpy()
        has_history = ~((a == b) | (np.isnan(a) & np.isnan(b))).all(axis=1)
        draw = np.random.default_rng(self.random_state).random(n)
        copied = np.flatnonzero(has_history & (draw < self.history_dropout))
        src = np.concatenate([np.arange(n), copied])
        copy = np.concatenate([np.zeros(n, dtype=bool), np.ones(len(copied), dtype=bool)])
        return src, copy

    def was_trained_on(self, person_id: pd.Series) -> np.ndarray:
        """Per row, whether this person's checkups were among the training data (bool array).

        Compares salted hashes; a chance collision of two 8-byte hashes is negligible (~n/2^64).
        Bundles saved before the hashes were stored cannot tell: RuntimeError.
        """
        self._check_fitted()
        if getattr(self, "trained_persons_", None) is None:
            raise RuntimeError("this bundle predates stored training persons; it cannot tell who it was trained on")
        h = person_hashes(pd.Series(person_id), self.person_salt_)
        return np.isin(h, self.trained_persons_, assume_unique=False)

    def _reference_tables(self, records: pd.DataFrame, X: pd.DataFrame, rows: dict[str, np.ndarray]) -> dict:
        """Per outcome, the percentiles of predicted risk by sex x age band over the rows it was fit on:
        the training population a report compares a person with (`models.reference`)."""
        male = is_male(records)
        sex = np.where(male == 1, "M", np.where(male == 0, "F", ""))
        band = age_band(records)
        probs = self.predict_features(X)
        return {o: reference.build_tables(probs[o].to_numpy()[r], sex[r], band[r]) for o, r in rows.items()}

    def _train(self, params: dict, Xv: np.ndarray, y: np.ndarray, tr: np.ndarray, ev: np.ndarray | None,
               rounds: int) -> xgb.Booster:
        """One boosted model, with early stopping on `ev` when given; locally or on the Dask client."""
        early = self.early_stopping_rounds if ev is not None else None
        if self._client is None:
            evals = [(xgb.DMatrix(Xv[ev], label=y[ev], feature_names=list(FEATURES)), "valid")] if ev is not None else []
            return xgb.train(params, xgb.DMatrix(Xv[tr], label=y[tr], feature_names=list(FEATURES)),
                             num_boost_round=rounds, evals=evals, early_stopping_rounds=early, verbose_eval=False)
        import dask.array as da
        import xgboost.dask as dxgb

        parts = max(1, len(self._client.scheduler_info()["workers"]))

        def dmatrix(part: np.ndarray):
            chunk = max(1, -(-len(part) // parts))
            return dxgb.DaskDMatrix(self._client, da.from_array(Xv[part], chunks=(chunk, -1)),
                                    da.from_array(y[part], chunks=chunk), feature_names=list(FEATURES))

        out = dxgb.train(self._client, params, dmatrix(tr), num_boost_round=rounds,
                         evals=[(dmatrix(ev), "valid")] if ev is not None else None,
                         early_stopping_rounds=early, verbose_eval=False)
        booster = out["booster"]
        if ev is not None:
            history = out["history"]["valid"]["logloss"]
            best = int(np.argmin(history))
            booster.set_attr(best_iteration=str(best), best_score=str(history[best]))
        return booster

    def _fit_outcome(self, spec, X: pd.DataFrame, y: np.ndarray, rows: np.ndarray, role: np.ndarray,
                     bucket: np.ndarray, original: np.ndarray | None = None,
                     person: np.ndarray | None = None) -> OutcomeModel:
        """Choose regularisation and rounds, the blend with the linear partner, and the calibration.

        With many events: one train / validation / calibration split of persons, calibration fit on
        the held-out calibration persons. With few events (small real cohorts) every row counts:
        k-fold cross-validation by person chooses the setting, rounds and blend on out-of-fold
        predictions, calibration is fit on those same out-of-fold predictions, and the final models
        are refit on all rows; the calibration is then cross-validated, not held out.

        `original` marks the records themselves (not history-dropout copies): sizes, event counts
        and the choice of mode count real checkups only. `person` (a code per row) groups rows for
        the interval members' resampling; without it the 100 person buckets are the units.
        """
        original = np.ones(len(y), dtype=bool) if original is None else original
        events = int(y[rows & original].sum())
        n_rows = int((rows & original).sum())
        if events == n_rows or events < 10:
            raise ValueError(f"{spec.name}: too few events to fit ({n_rows} rows, {events} events)")
        sample_size = self._sample_size(spec.name, n_rows, events)
        Xv = X.to_numpy(dtype=np.float32)
        Xf = X.to_numpy(dtype=float)
        idx = np.flatnonzero(rows)
        cv = events < self.cv_below_events
        folds, calib_idx = self._folds(spec.name, idx, y, role, bucket, cv)
        constraints = spec.monotone_constraints(FEATURES)
        base = self._base_params(constraints, y[idx].mean())

        setting, rounds, boosters, tried = self._select_setting(base, Xv, y, folds)
        weight, blends, m_oof, y_oof, linears = self._choose_blend(boosters, folds, Xv, Xf, y, constraints)
        if cv:
            a, b = fit_platt(m_oof(weight), y_oof)
            booster = self._train({**base, **setting}, Xv, y, idx, None, rounds)
            linear = self._fit_linear(Xf, y, idx, constraints)
            model = OutcomeModel(booster=booster, calib_a=a, calib_b=b, linear=linear, weight=weight)
        else:
            booster = boosters[0][: boosters[0].best_iteration + 1]
            model = OutcomeModel(booster=booster, calib_a=0.0, calib_b=1.0, linear=linears[0], weight=weight)
            margin = model.raw_margin(self._labelled_dmatrix(Xv, y, calib_idx), Xf[calib_idx])
            model.calib_a, model.calib_b = fit_platt(margin, y[calib_idx])
        fit_idx, member_calib = (idx, None) if cv else (folds[0][0], calib_idx)
        model.members = self._fit_members(spec.name, base, setting, model, Xv, Xf, y, fit_idx, member_calib,
                                          bucket if person is None else person, constraints)
        model.info = {
            "mode": (f"{self.cv_folds}-fold cross-validation by person: setting, rounds and blend chosen and the "
                     "calibration fitted on out-of-fold predictions, final model refit on all rows (calibration "
                     "is cross-validated, not held out)") if cv else
                    ("train/validation/calibration split of persons: calibration fitted on held-out "
                     "calibration persons"),
            "calibration": "cross-validated (out-of-fold)" if cv else "held-out persons",
            "rows": n_rows, "events": events, "sample_size": sample_size, "setting": setting, "tried": tried,
            "blends": blends, "weight": weight, "rounds": booster.num_boosted_rounds(),
            "interval": ({"members": len(model.members), "share": interval_.SUBSAMPLE, "level": interval_.LEVEL,
                          "multiplier": model.interval_multiplier, "method": interval_.METHOD}
                         if model.members else None),
            "choice": ("gradient boosting" if weight == 1.0 else
                       "logistic regression (ranked better on validation)" if weight == 0.0 else
                       f"blend: {weight:.2f} x gradient boosting + {1 - weight:.2f} x logistic regression"),
        }
        return model

    def _fit_members(self, outcome: str, base: dict, setting: dict, model: OutcomeModel, Xv: np.ndarray,
                     Xf: np.ndarray, y: np.ndarray, fit_idx: np.ndarray, calib_idx: np.ndarray | None,
                     person: np.ndarray, constraints) -> list[Member]:
        """`interval_members` members on random halves of the persons of `fit_idx` (the main booster's
        training rows), same setting and rounds, no early stopping (see `models.interval`).

        With `calib_idx` (split mode) each member refits the Platt calibration on a random half of the
        calibration persons; without (cross-validated mode) it takes the main model's calibration."""
        if self.interval_members < 2:
            return []
        rounds = model.booster.num_boosted_rounds()
        # A seed per outcome and member, reproducible and independent of the outcome order.
        key = int.from_bytes(hashlib.blake2b(outcome.encode(), digest_size=4).digest(), "little")
        members = []
        for j in range(self.interval_members):
            rng = np.random.default_rng([self.random_state, key, j])
            for _ in range(5):  # a half without events (or without non-events) is drawn again
                part = self._half_of_persons(fit_idx, person, rng)
                if 0 < y[part].sum() < len(part):
                    break
            else:
                raise ValueError(f"{outcome}: half-samples of persons have no events; more data are needed")
            booster = self._train({**base, **setting, "seed": self.random_state + 1 + j}, Xv, y, part, None, rounds)
            linear = self._fit_linear(Xf, y, part, constraints) if model.weight < 1.0 else None
            member = Member(booster=booster, calib_a=model.calib_a, calib_b=model.calib_b, linear=linear)
            if calib_idx is not None:
                cal = self._half_of_persons(calib_idx, person, rng)
                margin = booster.predict(self._labelled_dmatrix(Xv, y, cal), output_margin=True).astype(float)
                if model.weight < 1.0:
                    margin = model.weight * margin + (1.0 - model.weight) * linear.margin(Xf[cal])
                member.calib_a, member.calib_b = fit_platt(margin, y[cal])
            members.append(member)
        return members

    @staticmethod
    def _half_of_persons(idx: np.ndarray, person: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The rows of `idx` that belong to a random `SUBSAMPLE` share of its persons (no replacement)."""
        units = np.unique(person[idx])
        take = max(1, int(round(interval_.SUBSAMPLE * len(units))))
        chosen = rng.choice(units, size=take, replace=False)
        return idx[np.isin(person[idx], chosen)]

    def _sample_size(self, outcome: str, rows: int, events: int) -> dict:
        """Riley et al.'s minimum size for this outcome (candidate parameters = features), with a
        warning when the data are smaller."""
        need = riley_binary(len(FEATURES), events / rows)
        out = {**need.as_dict(), "rows": rows, "events": events, "enough": rows >= need.required_n,
               "method": "Riley et al., BMJ 2020;368:m441 (binary outcome; R2cs 15% of its maximum)"}
        if rows < need.required_n:
            warnings.warn(
                f"{outcome}: {rows:,} training rows ({events:,} events) are fewer than the {need.required_n:,} rows "
                f"(~{need.required_events:,} events) Riley et al. require for {len(FEATURES)} candidate parameters at "
                f"prevalence {events / rows:.2%}; expect optimism and check calibration on new data",
                SampleSizeWarning, stacklevel=4,  # the caller of RiskModel.fit
            )
        return out

    def _folds(self, outcome: str, idx: np.ndarray, y: np.ndarray, role: np.ndarray, bucket: np.ndarray,
               cv: bool) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
        """(training, evaluation) row pairs by person, and the calibration rows."""
        if cv:
            fold = bucket[idx] % self.cv_folds
            folds = [(idx[fold != k], idx[fold == k]) for k in range(self.cv_folds)]
            calib_idx = idx
        else:
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
            "learning_rate": self.learning_rate,
            "monotone_constraints": "(" + ",".join(map(str, constraints)) + ")",
            "base_score": float(np.clip(prevalence, 1e-4, 1 - 1e-4)),
            "seed": self.random_state,
            "nthread": self.n_jobs or 0,
            "max_bin": 128,
        }

    def _labelled_dmatrix(self, Xv: np.ndarray, y: np.ndarray, part: np.ndarray) -> xgb.DMatrix:
        return xgb.DMatrix(Xv[part], label=y[part], feature_names=list(FEATURES), nthread=self.n_jobs or -1)

    def _select_setting(self, base: dict, Xv: np.ndarray, y: np.ndarray, folds: list) -> tuple:
        """The grid setting with the best mean validation log-loss: (setting, mean best rounds,
        its boosters per fold, every setting's scores)."""
        best, tried = None, []
        for setting in self.grid:
            boosters = [self._train({**base, **setting}, Xv, y, tr, ev, self.max_rounds) for tr, ev in folds]
            score = float(np.mean([b.best_score for b in boosters]))
            rounds = int(round(np.mean([b.best_iteration + 1 for b in boosters])))
            tried.append({**setting, "valid_logloss": score, "rounds": rounds})
            if best is None or score < best[0]:
                best = (score, setting, rounds, boosters)
        _, setting, rounds, boosters = best
        return setting, rounds, boosters, tried

    def _choose_blend(self, boosters: list[xgb.Booster], folds: list, Xv: np.ndarray, Xf: np.ndarray,
                      y: np.ndarray, constraints: tuple[int, ...]) -> tuple:
        """Blend weight of booster vs linear partner on out-of-fold margins.

        Returns (weight, every weight's score, out-of-fold blended margin as a function of the weight,
        out-of-fold labels, the linear partner of each fold)."""
        oof_idx = np.concatenate([ev for _, ev in folds])
        m_boost = np.concatenate([
            b.predict(self._labelled_dmatrix(Xv, y, ev), output_margin=True,
                      iteration_range=(0, b.best_iteration + 1)).astype(float)
            for b, (_, ev) in zip(boosters, folds)
        ])
        linears = [self._fit_linear(Xf, y, tr, constraints) for tr, _ in folds]
        m_lin = np.concatenate([lin.margin(Xf[ev]) for lin, (_, ev) in zip(linears, folds)])
        y_oof = y[oof_idx]

        def m_oof(w: float) -> np.ndarray:
            return w * m_boost + (1 - w) * m_lin

        blends = []
        for w in (1.0, 0.75, 0.5, 0.25, 0.0):
            a, b = fit_platt(m_oof(w), y_oof)
            blends.append({"weight": w, "valid_logloss": _logloss(y_oof, _sigmoid(a + b * m_oof(w)))})
        best_blend = min(blends, key=lambda r: r["valid_logloss"])
        # Keep the boosted model alone unless the blend is clearly better (not noise).
        weight = best_blend["weight"] if best_blend["valid_logloss"] < blends[0]["valid_logloss"] * 0.999 else 1.0
        return weight, blends, m_oof, y_oof, linears

    def _fit_linear(self, Xf: np.ndarray, y: np.ndarray, part: np.ndarray, constraints) -> LogisticRisk:
        if len(part) > self.linear_max_rows:
            rng = np.random.default_rng(self.random_state)
            part = np.sort(rng.choice(part, self.linear_max_rows, replace=False))
        return LogisticRisk(monotone=constraints).fit(Xf[part], y[part])

    # -- prediction ------------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "models_"):
            raise RuntimeError("RiskModel is not fitted")

    def _dmatrix(self, X: pd.DataFrame) -> xgb.DMatrix:
        return xgb.DMatrix(X.to_numpy(dtype=np.float32), feature_names=list(self.feature_names_),
                           nthread=self.n_jobs or -1)

    def predict_features(self, X: pd.DataFrame) -> pd.DataFrame:
        """Calibrated probabilities for a model matrix, ignoring eligibility."""
        self._check_fitted()
        dm, Xn = self._dmatrix(X), X.to_numpy(dtype=float)
        out = {outcome: m.probability(dm, Xn) for outcome, m in self.models_.items()}
        return pd.DataFrame(out, index=X.index)

    def has_intervals(self) -> bool:
        """Whether every outcome carries an interval ensemble (False for bundles saved before it)."""
        self._check_fitted()
        return all(len(m.members) >= 2 for m in self.models_.values())

    def predict_interval_features(self, X: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray] | None]:
        """Per outcome, (low, high) nominal 95% interval around `predict_features`' probability
        (`models.interval`), or None for an outcome without members. Ignores eligibility."""
        self._check_fitted()
        dm, Xn = self._dmatrix(X), X.to_numpy(dtype=float)
        return {outcome: m.probability_interval(dm, Xn) for outcome, m in self.models_.items()}

    def interval_halfwidths_features(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        """Per outcome with members, each row's interval half-width in calibrated log-odds."""
        self._check_fitted()
        dm, Xn = self._dmatrix(X), X.to_numpy(dtype=float)
        return {o: interval_.halfwidth(m.member_logits(dm, Xn), m.interval_multiplier)
                for o, m in self.models_.items() if m.interval_multiplier is not None}

    def predict_interval(self, records: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray] | None]:
        """As `predict_interval_features` for records, NaN where the outcome does not apply."""
        out = self.predict_interval_features(build_features(records))
        applies = eligibility(records, tuple(self.models_))
        return {o: None if iv is None else tuple(np.where(applies[o].to_numpy(), b, np.nan) for b in iv)
                for o, iv in out.items()}

    def predict(self, records: pd.DataFrame) -> pd.DataFrame:
        """Calibrated one-year probabilities per outcome; NaN where the outcome does not apply."""
        X = build_features(records)
        probs = self.predict_features(X)
        applies = eligibility(records, tuple(self.models_))
        return probs.where(applies.to_numpy())

    def predict_baseline(self, records: pd.DataFrame) -> pd.DataFrame:
        """The logistic-regression baseline fit on the same training rows (NaN where not applicable)."""
        self._check_fitted()
        Xn = build_features(records).to_numpy(dtype=float)
        probs = pd.DataFrame({o: m.linear.predict_proba(Xn) for o, m in self.models_.items()}, index=records.index)
        return probs.where(eligibility(records, tuple(self.models_)).to_numpy())

    def risk_percentile(self, outcome: str, sex: str, band: str, probability: float) -> tuple[float, int] | None:
        """(share in % of the same sex and age band's training checkups with a lower predicted risk,
        size of that group), or None where the bundle has no table for them (older bundles, small groups)."""
        cell = getattr(self, "reference_", {}).get(outcome, {}).get(reference.cell_key(sex, band))
        if cell is None:
            return None
        return reference.percentile(cell, probability), int(cell["n"])

    def explain_features(self, X: pd.DataFrame, outcome: str) -> tuple[np.ndarray, np.ndarray]:
        """(contributions n x features, base value n) in calibrated log-odds: they add up to the
        calibrated logit of the predicted probability."""
        self._check_fitted()
        return self.models_[outcome].contributions(self._dmatrix(X), X.to_numpy(dtype=float))

    def explain(self, records: pd.DataFrame, outcome: str) -> tuple[np.ndarray, np.ndarray]:
        """SHAP contributions (log-odds) per feature for one outcome, and the base value."""
        return self.explain_features(build_features(records), outcome)

    # -- persistence -----------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Boosters in XGBoost's native UBJSON format plus a JSON manifest (and the reference
        percentiles and hashed training persons beside it)."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        manifest = {
            "format_version": FORMAT_VERSION,
            "features": list(self.feature_names_),
            "params": self.get_params(),
            "outcomes": {},
            "reference": REFERENCE_FILE,
            "training_data": provenance.normalise(getattr(self, "training_data_", None)),
        }
        persons = getattr(self, "trained_persons_", None)
        if persons is not None:
            manifest["training_persons"] = {
                "file": PERSONS_FILE, "count": int(len(persons)), "salt": self.person_salt_.hex(),
                "hash": "blake2b, 8-byte digest, of the person ID as text, keyed by this salt; sorted uint64",
            }
            np.save(directory / PERSONS_FILE, persons.astype("<u8"), allow_pickle=False)
        for outcome, m in self.models_.items():
            m.booster.save_model(directory / f"{outcome}.ubj")
            manifest["outcomes"][outcome] = {
                "calib_a": m.calib_a,
                "calib_b": m.calib_b,
                "weight": m.weight,
                "linear": m.linear.to_dict(),
                "info": m.info,
            }
            if m.members:
                # The interval ensemble: one booster file per member, its calibration and partner here.
                entries = []
                for j, member in enumerate(m.members):
                    name = f"{outcome}.member{j}.ubj"
                    member.booster.save_model(directory / name)
                    entries.append({"file": name, "calib_a": member.calib_a, "calib_b": member.calib_b,
                                    "linear": member.linear.to_dict() if member.linear is not None else None})
                manifest["outcomes"][outcome]["interval"] = {
                    "method": interval_.METHOD, "level": interval_.LEVEL, "share": interval_.SUBSAMPLE,
                    "members": entries,
                }
        (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        # Compact and apart from the manifest: ~5,000 numbers would drown the readable part.
        (directory / REFERENCE_FILE).write_text(json.dumps({
            "what": "percentiles 1..99 of predicted one-year risk per outcome, sex and age band, "
                    "over the training rows each outcome was fit on",
            "tables": getattr(self, "reference_", {}),
        }, separators=(",", ":")))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "RiskModel":
        directory = Path(directory)
        manifest = json.loads((directory / "manifest.json").read_text())
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported bundle format {manifest.get('format_version')!r} in {directory}")
        params = manifest["params"]
        params["outcomes"] = tuple(params["outcomes"])
        params["grid"] = tuple(params["grid"])
        # Bundles saved before history dropout have no such parameter; the class default applies.
        model = cls(**params)
        if tuple(manifest["features"]) != FEATURES:
            raise ValueError("bundle was trained on a different feature list; retrain it")
        model.feature_names_ = FEATURES
        model.models_ = {}
        # Bundles saved before the reference percentiles existed load without them.
        ref = directory / manifest.get("reference", REFERENCE_FILE)
        model.reference_ = json.loads(ref.read_text())["tables"] if ref.exists() else {}
        # Bundles saved before provenance was recorded load as kind "unknown".
        model.training_data_ = provenance.normalise(manifest.get("training_data"))
        # Bundles saved before the hashed training persons existed load without them.
        persons = manifest.get("training_persons")
        if persons is not None:
            model.person_salt_ = bytes.fromhex(persons["salt"])
            model.trained_persons_ = np.load(directory / persons["file"], allow_pickle=False).astype(np.uint64)
        for outcome, meta in manifest["outcomes"].items():
            booster = xgb.Booster()
            booster.load_model(directory / f"{outcome}.ubj")
            model.models_[outcome] = OutcomeModel(
                booster, meta["calib_a"], meta["calib_b"], LogisticRisk.from_dict(meta["linear"]), meta["weight"],
                meta.get("info", {}),
            )
            # Bundles saved before the interval ensemble existed load without members (no interval).
            for entry in (meta.get("interval") or {}).get("members", []):
                member_booster = xgb.Booster()
                member_booster.load_model(directory / entry["file"])
                model.models_[outcome].members.append(Member(
                    member_booster, entry["calib_a"], entry["calib_b"],
                    LogisticRisk.from_dict(entry["linear"]) if entry.get("linear") is not None else None,
                ))
        return model

    def get_params(self) -> dict:
        return {
            "outcomes": list(self.outcomes),
            "learning_rate": self.learning_rate,
            "max_rounds": self.max_rounds,
            "early_stopping_rounds": self.early_stopping_rounds,
            "grid": list(self.grid),
            "valid_share": self.valid_share,
            "calibration_share": self.calibration_share,
            "linear_max_rows": self.linear_max_rows,
            "cv_below_events": self.cv_below_events,
            "cv_folds": self.cv_folds,
            "history_dropout": self.history_dropout,
            "interval_members": self.interval_members,
            "random_state": self.random_state,
            "n_jobs": self.n_jobs,
        }
