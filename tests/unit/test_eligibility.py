import numpy as np
import pandas as pd

from features.eligibility import eligibility, ineligibility_reasons


def frame(**cols):
    n = max(len(v) for v in cols.values())
    base = {"sex": ["M"] * n, "age": [50] * n}
    base.update(cols)
    return pd.DataFrame(base)


def test_missing_values_never_exclude():
    e = eligibility(frame(person_id=["a"]))
    assert e.iloc[0].all()


def test_each_rule_excludes_with_its_reason():
    df = frame(
        history_stroke=[1, 0, 0, 0, 0, 0],
        on_diabetes_medication=[0, 1, 0, 0, 0, 0],
        fasting_glucose=[90, 90, 126, 125, 90, 90],
        sbp=[120, 120, 120, 140, 120, 120],
        hdl=[50, 50, 50, 50, 39, 50],
        urine_protein=[1, 1, 1, 1, 1, 3],
    )
    e = eligibility(df)
    r = ineligibility_reasons(df)
    assert e["cvd"].tolist() == [False, True, True, True, True, True]
    assert e["diabetes"].tolist() == [True, False, False, True, True, True]
    assert e["hypertension"].tolist() == [True, True, True, False, True, True]
    assert e["dyslipidemia"].tolist() == [True, True, True, True, False, True]
    assert e["ckd"].tolist() == [True, True, True, True, True, False]
    assert "stroke" in r.loc[0, "cvd"]
    assert "126" in r.loc[2, "diabetes"]
    assert pd.isna(r.loc[1, "cvd"])
    assert "protein" in r.loc[5, "ckd"]


def test_ckd_uses_egfr_from_creatinine():
    df = frame(serum_creatinine=[1.0, 2.0], age=[50, 70])
    assert eligibility(df)["ckd"].tolist() == [True, False]
    assert np.isnan(pd.to_numeric(df["serum_creatinine"])).sum() == 0
