"""Request models generated from `features.schema`: names, types, plausible ranges and codes are
read from the one field table, never restated. Errors become `{"index", "field", "message"}`."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from features.derive import FEATURES
from features.headers import likely_field
from features.schema import (
    BY_NAME,
    EXAM_DATE_MIN,
    EXAM_DATE_RANGE_TEXT,
    EXAMPLE_RECORD,
    FIELDS,
    NHIS_SEX_TEXT,
    ORDERED_PAIRS,
    PERSON_ID_CONTROL,
    PERSON_ID_CONTROL_TEXT,
    PERSON_ID_MAX_LEN,
    REQUIRED_ONE_OF,
    SEX_CODES,
    SEX_WORDS,
    latest_today,
)
from features.schema import Field as SchemaField
from features.validation import range_text, unit_slip

_FIELD_NAMES = {f.name for f in FIELDS}
_BOUND_ERRORS = frozenset({"greater_than_equal", "less_than_equal", "greater_than", "less_than"})
MAX_BATCH = 1000
# Errors listed in one answer: enough to fix a file's worth of records, and the rest counted.
MAX_ERRORS = 100
# The example record is plain JSON (numbers and strings); features.schema types it loosely as `object`.
EXAMPLE_JSON = cast(JsonDict, EXAMPLE_RECORD)


def _no_control(v: str) -> str:
    if re.search(PERSON_ID_CONTROL, v):
        raise ValueError(PERSON_ID_CONTROL_TEXT)
    return v


def _annotation(f: SchemaField) -> tuple[Any, Any]:
    desc = f"{f.label_en} ({f.label_ko})" + (f", {f.unit}" if f.unit else "")
    if f.codes and f.kind != "sex":
        desc += "; codes: " + ", ".join(f"{k} = {v}" for k, v in f.codes.items())
    if f.kind == "id":
        # Trimmed as the file readers trim it (one person, one id), so blank is empty.
        text = Annotated[
            str,
            StringConstraints(strip_whitespace=True, min_length=1, max_length=PERSON_ID_MAX_LEN),
            AfterValidator(_no_control),
        ]
        return text, Field(description=desc)
    if f.kind == "date":
        return dt.date | None, Field(None, description=desc + "; default: today")
    if f.kind == "sex":
        return str | int, Field(description=desc + f"; {'/'.join(SEX_WORDS)} or {NHIS_SEX_TEXT}")
    if f.kind in ("int", "code"):
        if f.low is not None:
            return int | None, Field(None, description=desc, ge=f.low, le=f.high)
        return int | None, Field(None, description=desc)
    return float | None, Field(None, ge=f.low, le=f.high, description=desc)


# What a coded field's codes are, where "code" alone would not say it.
_CODE_NOUNS = {"urine_protein": "dipstick code"}


def _codes_text(f: SchemaField) -> str:
    """`must be a dipstick code 1..6: 1 (-), 2 (±), ...`: the codes a coded field takes, with their meaning."""
    listed = ", ".join(f"{code} ({meaning})" for code, meaning in sorted(f.codes.items()))
    return f"must be a {_CODE_NOUNS.get(f.name, 'code')} {min(f.codes)}..{max(f.codes)}: {listed}"


def _validators() -> dict:
    codes = {f.name: set(f.codes) for f in FIELDS if f.codes and f.kind != "sex"}
    code_texts = {f.name: _codes_text(f) for f in FIELDS if f.codes and f.kind != "sex"}

    def check_codes(cls, v, info):
        if v is not None and v not in codes[info.field_name]:
            allowed = ", ".join(map(str, sorted(codes[info.field_name])))
            raise ValueError(f"must be one of the codes {allowed}")
        return v

    def check_sex(cls, v):
        if isinstance(v, bool) or not isinstance(v, (str, int)) or v not in SEX_CODES:
            raise ValueError(f"must be {' or '.join(SEX_WORDS)} (or {NHIS_SEX_TEXT})")
        return SEX_CODES[v]

    def date_of_datetime(cls, v):
        # A date with a time of day ("2023-05-02T09:30:00") is its date, as files read it; the
        # checkup is a day's event. A number is no ISO date: the validator would take 1758067200 for
        # a Unix time and refuse 20250917 in words that do not say what to send.
        if isinstance(v, (int, float)) or (isinstance(v, str) and v.strip().lstrip("+-").replace(".", "", 1).isdigit()):
            raise ValueError("must be an ISO date (YYYY-MM-DD), not a number")
        if isinstance(v, str):
            v = v.strip()  # as files read it
            if len(v) > 10:
                try:
                    return dt.datetime.fromisoformat(v.replace("Z", "+00:00")).date()
                except ValueError:
                    return v
        return v

    def check_date(cls, v):
        if v is not None and not (EXAM_DATE_MIN <= v <= latest_today()):
            raise ValueError(f"must be {EXAM_DATE_RANGE_TEXT}")
        return v

    def numbers_only(cls, v, info):
        # JSON strings and booleans are wrong types here, even when they look like numbers. A coded
        # field says its codes: "±" is how a lab writes a dipstick, and files read it so (not HTTP).
        if isinstance(v, (str, bool)):
            raise ValueError(code_texts.get(info.field_name, "must be a number"))
        return v

    def few_enough_fields(cls, data):
        return refuse_many_keys(data, "record", len(FIELDS))

    def cross_field(self):
        for group in REQUIRED_ONE_OF:
            if all(getattr(self, g) is None for g in group):
                raise ValueError(f"one of {' or '.join(group)} is required")
        for low, high in ORDERED_PAIRS:
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo >= hi:
                raise ValueError(f"{low} must be lower than {high}")
        return self

    return {
        "numbers_only": field_validator(*(f.name for f in FIELDS if f.numeric), mode="before")(numbers_only),
        "check_codes": field_validator(*codes)(check_codes),
        "check_sex": field_validator("sex", mode="before")(check_sex),
        "date_of_datetime": field_validator("exam_date", mode="before")(date_of_datetime),
        "check_date": field_validator("exam_date")(check_date),
        "few_enough_fields": model_validator(mode="before")(few_enough_fields),
        "cross_field": model_validator(mode="after")(cross_field),
    }


# Typed loosely on purpose: mypy checks a `**` dict's values against every keyword of create_model
# (__base__, __module__, ...), which a dict of (type, FieldInfo) tuples never matches.
_CHECKUP_FIELDS: dict[str, Any] = {f.name: _annotation(f) for f in FIELDS}

Checkup: type[BaseModel] = create_model(
    "Checkup",
    __config__=ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra={"example": EXAMPLE_JSON}),
    __doc__="One national health checkup (국가건강검진) of one person, in the canonical record's units.",
    __validators__=_validators(),
    **_CHECKUP_FIELDS,
)


def refuse_many_keys(data: Any, what: str, fields: int) -> Any:
    """Refuse, before any key is read, an object of more than twice the keys it can have: 700,000
    unknown keys would otherwise be checked one by one (seconds of a worker) and each named."""
    if isinstance(data, dict) and len(data) > 2 * fields:
        raise PydanticCustomError(
            "too_many_fields",
            "this {what} has {n} keys; it has at most {fields} fields",
            {"what": what, "n": f"{len(data):,}", "fields": fields},
        )
    return data


def one_checkup_a_day(checkups: list[Any]) -> None:
    """Refuse a second checkup of one person on one date (no exam_date is today's): it is not an
    earlier checkup of the first, so it cannot be its history, and one checkup would get two
    risks. Batch files reject such a row the same way (`features.validation.check_records`)."""
    first: dict[tuple[Any, Any], int] = {}
    for i, c in enumerate(checkups):
        key = (c.person_id, c.exam_date or dt.date.today())
        if key in first:
            raise PydanticCustomError(
                "same_day",
                "record {index} has the same person_id and exam_date as record {first} "
                "(a person has one checkup a day): send one of them",
                {"index": i, "first": first[key], "field": "exam_date"},
            )
        first[key] = i


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checkups: list[Checkup] = Field(min_length=1, max_length=MAX_BATCH)  # type: ignore[valid-type]
    # Strict: "yes" or 1 is a caller's mistake to name, not a guess to make.
    explain: bool = Field(True, strict=True)
    top_k: int = Field(5, ge=0, le=len(FEATURES), strict=True)

    @model_validator(mode="before")
    @classmethod
    def _few_keys(cls, data: Any) -> Any:
        return refuse_many_keys(data, "request", len(cls.model_fields))

    @model_validator(mode="after")
    def _one_checkup_a_day(self) -> ScoreRequest:
        one_checkup_a_day(self.checkups)
        return self


class ReportRequest(BaseModel):
    """One person's checkup, or several of one person's checkups, and the report's language.

    Accepted shapes: {"checkup": record}, {"checkups": [record, ...]}, a bare record (with an
    optional "lang") and a bare list of records. With a list, the newest checkup (by exam_date; a
    record without one is today's) is reported and the earlier ones are its history. A list that
    mixes persons is refused, naming the first record whose person_id differs."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"checkup": EXAMPLE_JSON, "lang": "ko"}})

    checkup: Checkup | None = None  # type: ignore[valid-type]
    checkups: list[Checkup] | None = Field(None, min_length=1, max_length=MAX_BATCH)  # type: ignore[valid-type]
    lang: Literal["ko", "en"] = "ko"

    @model_validator(mode="before")
    @classmethod
    def _bare_record_or_list(cls, data: Any) -> Any:
        # An envelope has three keys; a bare record a record's (and "lang").
        envelope = isinstance(data, dict) and ("checkup" in data or "checkups" in data)
        refuse_many_keys(data, "request", len(cls.model_fields) if envelope else len(FIELDS) + 1)
        if isinstance(data, list):
            return {"checkups": data}
        if isinstance(data, dict) and "checkup" not in data and "checkups" not in data:
            rest = dict(data)
            # "lang" only when given, so that a caller can tell a chosen language from the default.
            return {"checkup": rest, **({"lang": rest.pop("lang")} if "lang" in rest else {})}
        return data

    @model_validator(mode="after")
    def _one_person(self) -> ReportRequest:
        if (self.checkup is None) == (self.checkups is None):
            raise PydanticCustomError(
                "report_shape",
                "give either checkup (one record) or checkups (one person's records), not both",
                {"field": "checkups"},
            )
        if self.checkups:
            # Checkup is generated at run time: the type checker cannot know its fields (person_id).
            checkups: list[Any] = self.checkups
            first = checkups[0].person_id
            for i, c in enumerate(checkups):
                if c.person_id != first:
                    # The ids themselves are not echoed: pseudonymous, but still about patients.
                    raise PydanticCustomError(
                        "one_person",
                        "a report is about one person: record {index} has another person_id than record 0",
                        {"index": i, "field": "person_id"},
                    )
            one_checkup_a_day(checkups)
        return self

    def records(self) -> list[dict]:
        """The checkups as canonical records (plain dicts), in the order given."""
        if self.checkups is not None:
            checkups: list[BaseModel] = self.checkups
        else:
            assert self.checkup is not None  # _one_person: exactly one of checkup and checkups is given
            checkups = [self.checkup]
        return [c.model_dump() for c in checkups]


def errors_from(exc: ValidationError | list[dict], prefix: tuple = ("body",)) -> list[dict]:
    """Pydantic errors as {"index", "field", "message"}: which record, which field, why."""
    raw = exc.errors() if isinstance(exc, ValidationError) else exc
    out: list[dict] = []
    for e in raw:
        loc = list(e.get("loc", ()))
        if loc[: len(prefix)] == list(prefix):
            loc = loc[len(prefix) :]
        index = field = None
        # A record's field: checkups[i].field (/score) or checkup.field (/report, one record: index 0).
        record_loc = (
            (loc[1], loc[2:])
            if len(loc) >= 2 and loc[0] == "checkups" and isinstance(loc[1], int)
            else ((0, loc[1:]) if loc and loc[0] == "checkup" else None)
        )
        if record_loc is not None:
            index = record_loc[0]
            rest = [str(x) for x in record_loc[1] if not str(x).startswith(("function-", "int", "float", "str"))]
            field = rest[0] if rest else None
        elif loc:
            field = str(loc[0])
        elif e.get("loc"):
            field = "body"  # the request as a whole: empty, or not a JSON object
        ctx = e.get("ctx") or {}
        if e.get("type") in ("one_person", "report_shape", "same_day"):
            # Rules across records say which record and field they are about.
            index, field = ctx.get("index"), ctx.get("field")
        message = str(e.get("msg", "invalid"))
        if e.get("type") == "extra_forbidden":
            # As the file readers do: a near miss (`fasting_glucos`) names the field it likely means;
            # only for the errors an answer lists (`listed`), as the lookup costs a string match.
            likely = likely_field(field, _FIELD_NAMES) if field and len(out) < MAX_ERRORS else None
            message = "unknown field" + (f"; did you mean '{likely}'?" if likely else "")
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if e.get("type") in _BOUND_ERRORS and index is not None and field in BY_NAME:
            # The file readers' words, with the unit: pydantic's "greater than or equal to 30" gave
            # no unit, and glucose sent in mmol/L read as a mere typo.
            message = f"is outside the plausible range {range_text(BY_NAME[field])}"
            if isinstance(value := e.get("input"), int | float) and not isinstance(value, bool):
                message += unit_slip(BY_NAME[field], float(value))
        if field is None and index is not None:
            # Cross-field rules name their fields in the message.
            field = next((f.name for f in FIELDS if message.startswith(f.name) or f" {f.name} " in message), None)
        out.append({"index": index, "field": field, "message": message})
    return out


def listed(errors: list[dict]) -> list[dict]:
    """The errors an answer lists: the first `MAX_ERRORS`, and a count of the rest."""
    if len(errors) <= MAX_ERRORS:
        return errors
    more = len(errors) - MAX_ERRORS
    return [*errors[:MAX_ERRORS], {"index": None, "field": None, "message": f"{more:,} more errors not listed"}]
