"""RiskModel: one calibrated gradient-boosted model per outcome, in one bundle.

Each outcome's model is an XGBoost booster fit on that outcome's eligible rows only, with
clinically certain monotone constraints, its setting and rounds chosen on persons it was not fit on
(a validation split, or cross-validation by person), and a logistic (Platt) recalibration of its
margin fit on such persons' predictions; the final booster is then refit on every row
(`models.fitting`). Because the recalibration is affine in log-odds, SHAP contributions stay
exactly additive after calibration: calibrated log-odds = a + b * (bias + sum(contributions)).

History dropout: a checkup may be scored with or without the person's earlier checkups (a request
may send the current one alone). Every training row with history is also used once with all
longitudinal features missing, in the same split of persons, so early stopping and calibration see
both kinds and a checkup scored alone is calibrated too.

No class reweighting: reweighting distorts probabilities, and with 0.3-8 % event rates the
log-loss objective with early stopping already ranks and calibrates well.

This module is the bundle: parameters, the training rows, the public predict/explain API and
persistence. How one outcome is fitted is `models.fitting`; what a fitted outcome is (booster,
blend, calibration) is `models.outcome`; every prediction goes through `RiskModel.score`, which
`models.engine` serves from the compiled kernel (`models.kernel`) or the boosters.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from features.derive import FEATURES, age_band, build_features, is_male
from features.eligibility import eligibility
from features.schema import OUTCOMES
from models import drift_reference, provenance, reference
from models import interval as interval_
from models.engine import Backend, Engine, Scores
from models.fitting import EventRateWarning, OutcomeFitter, ProgressHook, SampleSizeWarning, TrainingRows
from models.logistic import LogisticRisk
from models.outcome import Member, OutcomeModel
from models.outcomes import OUTCOME_SPECS

__all__ = [
    "DEFAULT_GRID",
    "EventRateWarning",
    "RiskModel",
    "SampleSizeWarning",
    "Scores",
    "person_fold",
    "person_hashes",
]

FORMAT_VERSION = 1
REFERENCE_FILE = "reference.json"
PERSONS_FILE = "trained_persons.npy"


def _ranges(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lowest, highest) value of each feature column over the training rows; NaN where a column has
    no value at all (then nothing is held to it)."""
    present = ~np.isnan(X)
    any_value = present.any(axis=0)
    low = np.where(any_value, np.where(present, X, np.inf).min(axis=0), np.nan)
    high = np.where(any_value, np.where(present, X, -np.inf).max(axis=0), np.nan)
    return low, high


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


DEFAULT_GRID: tuple[dict, ...] = (
    {"max_depth": 3, "min_child_weight": 5.0, "reg_lambda": 5.0},
    {"max_depth": 5, "min_child_weight": 10.0, "reg_lambda": 5.0},
    {"max_depth": 4, "min_child_weight": 50.0, "reg_lambda": 20.0, "subsample": 0.8, "colsample_bynode": 0.8},
)


# Building an engine compiles the boosters (seconds): one build per model even when threads race.
_ENGINE_LOCK = threading.Lock()


# Measurements a checkup may arrive without, blanked together (one test, one panel, one answer).
INPUT_GROUPS: tuple[tuple[str, ...], ...] = (
    ("waist_cm",),
    ("ast", "alt", "ggt"),
    ("hemoglobin",),
    ("total_cholesterol", "triglycerides", "hdl", "ldl"),
    ("ldl",),
    ("fasting_glucose",),
    ("sbp", "dbp"),
    ("serum_creatinine",),
    ("urine_protein",),
    ("height_cm", "weight_kg"),
    ("smoking_status",),
    ("drinking",),
    ("activity_days_per_week",),
)


class RiskModel:
    """Calibrated XGBoost models, one per outcome, behind one fit/predict/explain interface.

    Parameters are stored untouched (scikit-learn convention); learned state ends in `_`.
    `grid` is the small set of regularisation settings tried per outcome; the one with the best
    validation log-loss wins, so small data get the heavily regularised setting.
    `history_dropout` is the share of training rows with history that are also used without it
    (0 turns history dropout off). `input_dropout` is the share of training rows also used, sent
    alone, with some optional measurements blanked (`INPUT_GROUPS`; 0 turns it off).
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
        input_dropout: float = 0.3,
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
        self.input_dropout = input_dropout
        self.interval_members = interval_members
        self.random_state = random_state
        self.n_jobs = n_jobs

    # -- fitting ---------------------------------------------------------------------------------

    def fit(self, records: pd.DataFrame, progress: ProgressHook | None = None, client: object = None) -> RiskModel:
        """Fit every outcome on its eligible, labelled rows of a canonical frame.

        `progress(outcome, step, done, total)`, when given, is called as each outcome's boosting
        rounds advance and as each interval member is fitted (steps: `models.fitting`).
        `client`: a dask.distributed Client; the boosted models are then trained with xgboost.dask
        across its workers (same algorithm and settings), for data that outgrow one machine.
        """
        X = build_features(records)
        self.feature_ranges_: tuple[np.ndarray, np.ndarray] | None = _ranges(X.to_numpy(dtype=np.float64))
        data, src, copy, partial = self._training_rows(records, X)
        eligible = eligibility(records, self.outcomes)
        fitter = OutcomeFitter(self, data, client, progress)
        self.feature_names_ = FEATURES
        self.models_: dict[str, OutcomeModel] = {}
        fitted_rows: dict[str, np.ndarray] = {}
        for outcome in self.outcomes:
            spec = OUTCOME_SPECS[outcome]
            if spec.label not in records.columns:
                raise ValueError(f"training data have no label column {spec.label!r}")
            y = pd.to_numeric(records[spec.label], errors="coerce").to_numpy(dtype=float)
            rows = eligible[outcome].to_numpy() & ~np.isnan(y)
            self.models_[outcome] = fitter.fit(spec, y[src], rows[src])
            self.models_[outcome].info["history_dropout_rows"] = int((rows[src] & copy & ~partial).sum())
            self.models_[outcome].info["input_dropout_rows"] = int((rows[src] & partial).sum())
            fitted_rows[outcome] = rows
        probs = self.predict_features(X)
        self.reference_ = self._reference_tables(records, probs, fitted_rows)
        # What the training data looked like, for `checkup-risk monitor` (no rows: models.drift_reference).
        labels = {
            o: pd.to_numeric(records[OUTCOME_SPECS[o].label], errors="coerce").to_numpy(dtype=float)
            for o in fitted_rows
        }
        self.drift_reference_: dict | None = drift_reference.build(records, probs, fitted_rows, labels)
        # Who was trained on, without keeping IDs: salted hashes, a fresh salt per bundle, so the
        # bundle answers "was this person in training?" for a given ID and reveals nothing else.
        self.person_salt_ = secrets.token_bytes(16)
        self.trained_persons_ = np.unique(person_hashes(records["person_id"], self.person_salt_))
        # Synthetic or real, persons, checkups, exam dates: a synthetic model must say so wherever it speaks.
        self.training_data_ = provenance.detect(records)
        return self

    def _training_rows(
        self, records: pd.DataFrame, X: pd.DataFrame
    ) -> tuple[TrainingRows, np.ndarray, np.ndarray, np.ndarray]:
        """(the training rows, source record of each, whether it is a copy, whether it is an
        input-dropout copy).

        Every record, then the history-dropout copies (same person, same split), whose features are
        built exactly as for a checkup sent alone, then the input-dropout copies; split by person
        into train / valid / calib."""
        bucket = person_fold(records["person_id"], self.random_state)
        valid_cut = int(round(100 * self.valid_share))
        calib_cut = valid_cut + int(round(100 * self.calibration_share))
        role = np.where(bucket < valid_cut, "valid", np.where(bucket < calib_cut, "calib", "train"))
        X_alone = build_features(records.drop(columns=["person_id"]))
        src, copy = self._history_dropout_rows(X, X_alone)
        partial_src, X_partial = self._input_dropout_rows(records)
        Xt = pd.concat([X, X_alone.iloc[src[copy]], X_partial], ignore_index=True)
        partial = np.concatenate([np.zeros(len(src), dtype=bool), np.ones(len(partial_src), dtype=bool)])
        src = np.concatenate([src, partial_src])
        copy = np.concatenate([copy, np.ones(len(partial_src), dtype=bool)])
        person = np.unique(records["person_id"].astype(str).to_numpy(), return_inverse=True)[1]
        data = TrainingRows(
            Xv=Xt.to_numpy(dtype=np.float32),
            Xf=Xt.to_numpy(dtype=float),
            role=role[src],
            bucket=bucket[src],
            original=~copy,
            person=person[src],
        )
        return data, src, copy, partial

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

    def _input_dropout_rows(self, records: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
        """(source row of each copy, the copies' features): a seeded random `input_dropout` share of
        the records, sent alone, each with every optional measurement group (`INPUT_GROUPS`) blanked
        with probability one half (at least one).

        Real checkups and other systems' FHIR often lack a waist, a liver panel or a haemoglobin
        that the training file always has. Without such copies a tree sends a missing value down
        whichever branch it learned nothing about, and a record without a waist got a twentieth of
        the hypertension risk; with them, a missing measurement moves the risk toward what the
        model expects without it."""
        rng = np.random.default_rng(self.random_state + 1)
        chosen = np.flatnonzero(rng.random(len(records)) < self.input_dropout)
        if not len(chosen):
            return chosen, build_features(records.iloc[:0].drop(columns=["person_id"]))
        part = records.iloc[chosen].drop(columns=["person_id"]).reset_index(drop=True)
        blank = rng.random((len(chosen), len(INPUT_GROUPS))) < 0.5
        none = ~blank.any(axis=1)
        blank[none, rng.integers(0, len(INPUT_GROUPS), none.sum())] = True
        for g, columns in enumerate(INPUT_GROUPS):
            present = [c for c in columns if c in part.columns]
            if present:
                part.loc[blank[:, g], present] = np.nan
        return chosen, build_features(part)

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

    def _reference_tables(self, records: pd.DataFrame, probs: pd.DataFrame, rows: dict[str, np.ndarray]) -> dict:
        """Per outcome, the percentiles of predicted risk by sex x age band over the rows it was fit on:
        the training population a report compares a person with (`models.reference`)."""
        male = is_male(records)
        sex = np.where(male == 1, "M", np.where(male == 0, "F", ""))
        band = age_band(records)
        return {o: reference.build_tables(probs[o].to_numpy()[r], sex[r], band[r]) for o, r in rows.items()}

    # -- scoring: every prediction and explanation goes through `score` --------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "models_"):
            raise RuntimeError("RiskModel is not fitted")

    def engine(self, backend: Backend = "auto") -> Engine:
        """The engine that scores this model (`models.engine`): built on first use, then kept.

        "auto" (the default everywhere) is the compiled kernel, or the XGBoost boosters where the
        kernel cannot be compiled; "compiled" and "booster" force one (tests, benchmarks). Building
        the compiled engine takes a few seconds; call it once before serving (`warm_up`)."""
        self._check_fitted()
        # Keyed by the outcome models it was built from: a copy given other models_ rebuilds.
        source, engines = self._engine_cache()
        if source is self.models_ and backend in engines:
            return engines[backend]  # the per-request path: no lock
        with _ENGINE_LOCK:
            source, engines = self._engine_cache()
            if source is not self.models_:
                engines = {}
                self._engines = (self.models_, engines)
            if backend not in engines:
                auto = engines.get("auto")
                engines[backend] = (
                    auto
                    if auto is not None and auto.backend == backend
                    else Engine.build(self.models_, self.feature_names_, backend, self.n_jobs)
                )
                engines.setdefault(engines[backend].backend, engines[backend])
            return engines[backend]

    def _engine_cache(self) -> tuple[dict[str, OutcomeModel] | None, dict[str, Engine]]:
        return getattr(self, "_engines", (None, {}))

    def warm_up(self) -> str:
        """Build the default engine now rather than on the first request; returns its backend name."""
        return self.engine().backend

    def _matrix(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Rows of the model matrix as float64, C order: a DataFrame's feature columns by name, or
        an array (one row or many) already in `feature_names_` order."""
        if isinstance(X, pd.DataFrame):
            X = X[list(self.feature_names_)].to_numpy(dtype=np.float64)
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != len(self.feature_names_):
            raise ValueError(f"expected a matrix with {len(self.feature_names_)} feature columns, got {X.shape}")
        ranges = getattr(self, "feature_ranges_", None)
        if ranges is not None:
            # Held to the training data's range: a tree scores a value beyond it as the edge value
            # anyway, but the logistic partner would extrapolate linearly (an ALT of 1,000 made type
            # 2 diabetes near certain). Missing stays missing; a column without bounds is left as is.
            low, high = ranges
            X = np.clip(X, np.nan_to_num(low, nan=-np.inf), np.nan_to_num(high, nan=np.inf))
        return np.ascontiguousarray(X)

    def training_range(self, feature: str) -> tuple[float, float] | None:
        """(lowest, highest) training value of a feature, or None (no ranges, or no value at all)."""
        ranges = getattr(self, "feature_ranges_", None)
        if ranges is None:
            return None
        j = self.feature_names_.index(feature)
        low, high = float(ranges[0][j]), float(ranges[1][j])
        return None if np.isnan(low) else (low, high)

    def outside_training(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Boolean matrix (rows x features): which values lie outside the training data's range, and
        so are scored as its nearest edge (`_matrix`). All False for a bundle without ranges."""
        if isinstance(X, pd.DataFrame):
            X = X[list(self.feature_names_)].to_numpy(dtype=np.float64)
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        ranges = getattr(self, "feature_ranges_", None)
        if ranges is None:
            return np.zeros(X.shape, dtype=bool)
        low, high = ranges
        return (X < low) | (X > high)

    def score(
        self,
        X: pd.DataFrame | np.ndarray,
        *,
        explain: bool = False,
        intervals: bool = False,
        outcomes: tuple[str, ...] | None = None,
        threads: int | None = None,
        backend: Backend = "auto",
    ) -> Scores:
        """Probabilities, and on request SHAP explanations and intervals, for rows of the model matrix
        (`features.derive.build_features` / `feature_matrix`); eligibility is not applied.

        `outcomes`: a subset to score (default all). `threads`: how many threads of the compiled
        kernel may share large inputs (default `n_jobs`, else every core this process may use);
        small inputs, a request's few records, run on one. See `models.engine.Scores`."""
        return self.engine(backend).score(self._matrix(X), explain, intervals, outcomes, self._threads(threads))

    def _threads(self, threads: int | None) -> int:
        if threads is not None:
            return max(1, threads)
        if self.n_jobs is not None and self.n_jobs > 0:
            return self.n_jobs
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

    def predict_features(self, X: pd.DataFrame) -> pd.DataFrame:
        """Calibrated probabilities for a model matrix, ignoring eligibility."""
        return pd.DataFrame(self.score(X).probability, index=X.index)

    def explain_features(self, X: pd.DataFrame | np.ndarray, outcome: str) -> tuple[np.ndarray, np.ndarray]:
        """(contributions n x features, base value n) in calibrated log-odds: they add up to the
        calibrated logit of the predicted probability."""
        s = self.score(X, explain=True, outcomes=(outcome,))
        return s.contributions[outcome], s.base[outcome]

    def predict_interval_features(self, X: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray] | None]:
        """Per outcome, (low, high) nominal 95% interval around `predict_features`' probability
        (`models.interval`), or None for an outcome without members. Ignores eligibility."""
        s = self.score(X, intervals=True)
        return {o: s.interval(o) for o in self.models_}

    def has_intervals(self) -> bool:
        """Whether every outcome carries an interval ensemble (False for bundles saved before it)."""
        self._check_fitted()
        return all(len(m.members) >= 2 for m in self.models_.values())

    def predict(self, records: pd.DataFrame) -> pd.DataFrame:
        """Calibrated one-year probabilities per outcome; NaN where the outcome does not apply."""
        X = build_features(records)
        probs = self.predict_features(X)
        applies = eligibility(records, tuple(self.models_))
        return probs.where(applies.to_numpy())

    def predict_interval(self, records: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray] | None]:
        """As `predict_interval_features` for records, NaN where the outcome does not apply."""
        out = self.predict_interval_features(build_features(records))
        applies = eligibility(records, tuple(self.models_))
        return {
            o: None
            if iv is None
            else (np.where(applies[o].to_numpy(), iv[0], np.nan), np.where(applies[o].to_numpy(), iv[1], np.nan))
            for o, iv in out.items()
        }

    def explain(self, records: pd.DataFrame, outcome: str) -> tuple[np.ndarray, np.ndarray]:
        """SHAP contributions (log-odds) per feature for one outcome, and the base value."""
        return self.explain_features(build_features(records), outcome)

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

    # -- persistence -----------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Boosters in XGBoost's native UBJSON format plus a JSON manifest (and the reference
        percentiles and hashed training persons beside it)."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        manifest: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "features": list(self.feature_names_),
            "params": self.get_params(),
            "outcomes": {},
            "reference": REFERENCE_FILE,
            "training_data": provenance.normalise(getattr(self, "training_data_", None)),
        }
        ranges = getattr(self, "feature_ranges_", None)
        if ranges is not None:
            manifest["feature_ranges"] = {
                f: [None if np.isnan(lo) else float(lo), None if np.isnan(hi) else float(hi)]
                for f, lo, hi in zip(self.feature_names_, *ranges, strict=True)
            }
        persons = getattr(self, "trained_persons_", None)
        if persons is not None:
            manifest["training_persons"] = {
                "file": PERSONS_FILE,
                "count": int(len(persons)),
                "salt": self.person_salt_.hex(),
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
                    entries.append(
                        {
                            "file": name,
                            "calib_a": member.calib_a,
                            "calib_b": member.calib_b,
                            "linear": member.linear.to_dict() if member.linear is not None else None,
                        }
                    )
                manifest["outcomes"][outcome]["interval"] = {
                    "method": interval_.METHOD,
                    "level": interval_.LEVEL,
                    "share": interval_.SUBSAMPLE,
                    "members": entries,
                }
        drift = getattr(self, "drift_reference_", None)
        if drift is not None:
            manifest["drift_reference"] = drift_reference.FILE
        (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        # Compact and apart from the manifest: ~5,000 numbers would drown the readable part.
        (directory / REFERENCE_FILE).write_text(
            json.dumps(
                {
                    "what": "percentiles 1..99 of predicted one-year risk per outcome, sex and age band, "
                    "over the training rows each outcome was fit on",
                    "tables": getattr(self, "reference_", {}),
                },
                separators=(",", ":"),
            )
        )
        if drift is not None:
            # Binned shares of the training data, no rows (models.drift_reference): for the monitor.
            (directory / drift_reference.FILE).write_text(json.dumps(drift, separators=(",", ":")))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> RiskModel:
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
        # Bundles saved before the drift reference existed load without it (None): the monitor says so.
        drift = directory / manifest.get("drift_reference", drift_reference.FILE)
        model.drift_reference_ = json.loads(drift.read_text()) if drift.exists() else None
        # Bundles saved before the training ranges existed load without them: nothing is held.
        saved = manifest.get("feature_ranges")
        model.feature_ranges_ = (
            (
                np.array([np.nan if saved[f][0] is None else saved[f][0] for f in FEATURES], dtype=np.float64),
                np.array([np.nan if saved[f][1] is None else saved[f][1] for f in FEATURES], dtype=np.float64),
            )
            if saved is not None
            else None
        )
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
                booster,
                meta["calib_a"],
                meta["calib_b"],
                LogisticRisk.from_dict(meta["linear"]),
                meta["weight"],
                meta.get("info", {}),
            )
            # Bundles saved before the interval ensemble existed load without members (no interval).
            for entry in (meta.get("interval") or {}).get("members", []):
                member_booster = xgb.Booster()
                member_booster.load_model(directory / entry["file"])
                model.models_[outcome].members.append(
                    Member(
                        member_booster,
                        entry["calib_a"],
                        entry["calib_b"],
                        LogisticRisk.from_dict(entry["linear"]) if entry.get("linear") is not None else None,
                    )
                )
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
            "input_dropout": self.input_dropout,
            "interval_members": self.interval_members,
            "random_state": self.random_state,
            "n_jobs": self.n_jobs,
        }
