"""The values a reader could not take, collected column by column, and their one-line-per-problem form.

A reader never drops a row silently: every row it does not keep has at least one line here
(`REJECT_COLUMNS`: the 0-based input ``index``, ``person_id``, ``field``, the raw ``value`` and the
``reason``). The reasons are stable strings: tests, reports and the HIS match on them.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from features import schema

REJECT_COLUMNS: tuple[str, ...] = ("index", "person_id", "field", "value", "reason")

R_MISSING = "missing required field"
R_MISSING_AGE = "missing required field: age or age_group"
R_ID_TOO_LONG = f"person_id longer than {schema.PERSON_ID_MAX_LEN} characters"
R_NOT_NUMBER = "not a number"
R_LABEL_NOT_NUMBER = "not a number: a label is 0 (no event), 1 (event) or empty (not eligible)"
R_NOT_INTEGER = "not an integer"
R_BAD_CODE = "not an allowed code"  # followed by the allowed codes
# The youngest NHIS band the models take is the one that starts at the record's lowest age (20).
R_AGE_UNDER_20 = f"age band under {schema.BY_NAME['age'].low:g} is outside the model's population"
R_BAD_SEX = f"not a sex code ({schema.SEX_CODES_TEXT})"
R_BAD_DATE = "not a date (expected YYYY-MM-DD)"
# Training on several files: the same checkup in a later file (newer labels) replaces this row.
R_SUPERSEDED = "the same person and exam date appear in a later file, whose row is used"


_SAME_DAY = "the same person and exam date as row"


def same_day(first_index: int) -> str:
    """Why a second row of one person on one date is left out (a duplicated export, usually): it
    is not an earlier checkup of the first, so it cannot be its history, and scoring both would
    give one checkup two risks. `first_index` is the 0-based input row kept."""
    return f"{_SAME_DAY} {first_index + 1} (a person has one checkup a day): left out"


def is_same_day(reason: pd.Series) -> pd.Series:
    """Which reasons are `same_day`'s: a repeat of a checkup kept, which loses nothing of its history."""
    return reason.astype(str).str.startswith(_SAME_DAY)


def bad_label(column: str) -> str:
    """Why a training or evaluation row with an unreadable label or true risk is left out."""
    return f"{column} must be between 0 and 1" if column.endswith("_true_risk") else f"{column} must be 0, 1 or empty"


class Rejects:
    """The problems found in `n` input rows: which rows are bad, and per problem the rows, field,
    reason and raw column (for the values shown)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.bad = np.zeros(n, dtype=bool)
        self.by_field: dict[str, np.ndarray] = {}
        self._parts: list[tuple[np.ndarray, str, str, pd.Series | None]] = []

    def add(self, mask: np.ndarray, field_name: str, reason: str, raw: pd.Series | None) -> None:
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        self._parts.append((np.flatnonzero(mask), field_name, reason, raw))
        self.bad |= mask
        prev = self.by_field.get(field_name)
        self.by_field[field_name] = mask if prev is None else (prev | mask)

    def of(self, field_name: str) -> np.ndarray:
        """Rows already rejected for `field_name` (so that one value gets one line)."""
        return self.by_field.get(field_name, np.zeros(self.n, dtype=bool))

    def frame(self, offset: int, person_id: np.ndarray) -> pd.DataFrame:
        """`REJECT_COLUMNS`, one line per problem, by input row (problems of a row in the order found)."""
        rows = []
        for pos, field_name, reason, raw in self._parts:
            values = [""] * len(pos) if raw is None else [_display(v) for v in raw.iloc[pos]]
            for p, v in zip(pos.tolist(), values, strict=True):
                pid = person_id[p]
                rows.append((offset + p, None if _isna(pid) else str(pid), field_name, v, reason))
        out = pd.DataFrame(rows, columns=list(REJECT_COLUMNS))
        out = out.astype({"index": "int64"}) if len(out) else empty_rejects()
        return out.sort_values("index", kind="stable").reset_index(drop=True)


def _isna(v: object) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _display(v: object) -> str:
    if _isna(v):
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def empty_rejects() -> pd.DataFrame:
    """No problems, with the columns and dtypes of `Rejects.frame`."""
    return pd.DataFrame({c: pd.Series(dtype="int64" if c == "index" else object) for c in REJECT_COLUMNS})


# Past this share of rejected rows, `train` and `score` stop (unless told to go on): a file that
# loses that much is more likely the wrong file, or a format the readers misread, than dirty data.
MAX_REJECT_SHARE = 0.2


def summary(
    rejects: pd.DataFrame, rows_in: int, top: int = 5, listed_in: str = "the rejects file"
) -> tuple[int, float, list[str]]:
    """(rows rejected, their share of `rows_in`, the lines that say so): "rejected R of N rows
    (S%):" and then one line per most common reason, "  n rows: field: reason" (a row counted once
    per reason; a reason naming another row, "as row 12", counts as one reason, "as row N").
    `listed_in` says where every rejected row is listed. No values and no ids: the lines may go
    to a terminal or a log."""
    rejected = int(rejects["index"].nunique()) if len(rejects) else 0
    share = rejected / rows_in if rows_in else (1.0 if rejected else 0.0)
    lines = [f"rejected {rejected:,} of {rows_in:,} rows ({share:.1%})" + (":" if rejected else "")]
    if rejected:
        # "as row 3", "as row 11": one reason, said once ("as row N") unless only one row is named.
        reason = rejects["reason"].astype(str)
        general = reason.str.replace(r"\brow \d+", "row N", regex=True)
        named = reason.groupby([rejects["field"], general]).transform("nunique")
        rejects = rejects.assign(reason=general.where(named > 1, reason))
        counts = rejects.groupby(["field", "reason"])["index"].nunique().sort_values(ascending=False, kind="stable")
        lines += [f"  {int(n):,} {'row' if n == 1 else 'rows'}: {f}: {r}" for (f, r), n in counts.head(top).items()]
        if len(counts) > top:
            # The reasons not listed, so the listed counts are not read as all of them.
            shown = set(rejects.set_index(["field", "reason"]).loc[counts.index[:top], "index"])
            rest = rejects.loc[~rejects["index"].isin(shown), "index"].nunique()
            lines.append(
                f"  and {len(counts) - top:,} more reasons"
                + (f" ({int(rest):,} more rows)" if rest else "")
                + f": see {listed_in}"
            )
    return rejected, share, lines


def history_gap(rows: int, persons: int, listed_in: str) -> str:
    """The words for valid rows of persons who also have a rejected row: a rejected checkup's
    diagnosis, treatment or lipid panel is missing from their history, so what it recorded may be
    scored (or labelled) as new. No ids."""
    return (
        f"{rows:,} valid {'row is' if rows == 1 else 'rows are'} of {persons:,} "
        f"{'person' if persons == 1 else 'persons'} who also have a rejected row: what a rejected checkup "
        "recorded (a diagnosis, treatment, a lipid panel) is missing from their history, so a condition it "
        f"recorded may be taken as new; fix the rows in {listed_in} and run again"
    )


class HistoryGaps:
    """Valid rows of persons who also have a rejected row (a same-day repeat of a kept checkup
    aside): what the rejected checkup recorded (a diagnosis, treatment, a lipid panel) is missing
    from their history, so a condition it recorded may be scored as new. Counted over a whole file,
    whatever order its rows come in."""

    def __init__(self) -> None:
        self.valid: Counter[str] = Counter()
        self.rejected: set[str] = set()

    def update(self, records: pd.DataFrame, rejects: pd.DataFrame) -> None:
        self.valid.update(records["person_id"].astype(str).tolist())
        if len(rejects):
            lost = rejects.loc[~is_same_day(rejects["reason"]), "person_id"].dropna()
            self.rejected.update(lost.astype(str).tolist())

    def counts(self) -> dict[str, int]:
        """`history_gap_rows` and `history_gap_persons`, for a command's summary (`history_gap` words them)."""
        persons = [p for p in self.rejected if self.valid[p]]
        return {"history_gap_rows": sum(self.valid[p] for p in persons), "history_gap_persons": len(persons)}


def too_many(rejected: int, rows_in: int, share: float, max_share: float) -> str | None:
    """The one-line reason to stop when more than `max_share` of the rows were rejected, else None."""
    if share <= max_share:
        return None
    return (
        f"{rejected:,} of {rows_in:,} rows ({share:.0%}) were rejected, more than the {max_share:.0%} "
        "allowed (top reasons above)"
    )
