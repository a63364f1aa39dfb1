"""The units a measurement may come in, with the factor that brings each to the record's unit
(`features.schema`): one table, read by the FHIR reader to convert and by file validation to name the
unit a value out of range was probably written in.

Units are keyed by their normalised (lower-case) UCUM code or display unit. Display units as other
systems write them count too: "mg%" and "mg/100ml" are mg/dL, "mM" is mmol/L (lower-cased "mm" only in
molar tables, never next to millimetres), kPa is 7.50062 mmHg.
"""

from __future__ import annotations

import functools

_MASS = {"mg/dl": 1.0, "mg%": 1.0, "mg/100ml": 1.0}
_INCH = 2.54
_LENGTH_CM = {
    "cm": 1.0,
    "m": 100.0,
    "mm": 0.1,
    "[in_i]": _INCH,
    "[in_us]": _INCH,
    "in": _INCH,
    "inch": _INCH,
    "inches": _INCH,
    "[ft_i]": 12 * _INCH,
    "ft": 12 * _INCH,
}
_ENZYME = {"u/l": 1.0, "[iu]/l": 1.0, "iu/l": 1.0, "ukat/l": 60.0}
_PRESSURE = {"mm[hg]": 1.0, "mmhg": 1.0, "kpa": 7.50062}
_POUND = 0.45359237
_WEIGHT = {"kg": 1.0, "g": 0.001, "[lb_av]": _POUND, "lb": _POUND, "lbs": _POUND}


def _molar(factor: float) -> dict[str, float]:
    return {"mmol/l": factor, "mm": factor}


# Molar factors: mg/dL per mmol/L is the molar mass / 10 (glucose 180.16, cholesterol 386.65,
# triglyceride as triolein 885.7); creatinine mg/dL = umol/L / 88.42; haemoglobin g/dL per mmol/L
# (as the Fe monomer, 16.114 g/mmol) is 1.6114.
_GLUCOSE = {**_MASS, **_molar(18.016)}
_CHOL = {**_MASS, **_molar(38.67)}
_TG = {**_MASS, **_molar(88.57)}
_CREATININE = {**_MASS, "umol/l": 1 / 88.42, "um": 1 / 88.42}
_HEMOGLOBIN = {"g/dl": 1.0, "g%": 1.0, "g/100ml": 1.0, "g/l": 0.1, "mmol/l": 1.6114}

# Per record field: each accepted unit and its factor to the field's unit.
UNITS: dict[str, dict[str, float]] = {
    "sbp": _PRESSURE,
    "dbp": _PRESSURE,
    "height_cm": _LENGTH_CM,
    "weight_kg": _WEIGHT,
    "waist_cm": _LENGTH_CM,
    "fasting_glucose": _GLUCOSE,
    "total_cholesterol": _CHOL,
    "triglycerides": _TG,
    "hdl": _CHOL,
    "ldl": _CHOL,
    "hemoglobin": _HEMOGLOBIN,
    "serum_creatinine": _CREATININE,
    "ast": _ENZYME,
    "alt": _ENZYME,
    "ggt": _ENZYME,
}


@functools.cache
def other_units(field_name: str) -> tuple[tuple[str, float], ...]:
    """The units other than the record's that `field_name` is read in, with their factor to the
    record's unit (glucose: mmol/L x 18.016), one per factor: the unit slips a file's value out of
    range may be."""
    seen: dict[str, float] = {}
    for unit, factor in UNITS.get(field_name, {}).items():
        if factor != 1.0 and factor not in seen.values() and not unit.startswith("["):
            seen[unit] = factor
    return tuple(seen.items())
