"""Riley et al. (BMJ 2020;368:m441) minimum sample size, against numbers worked by hand."""

import math

import pytest

from models.sample_size import max_r2_cox_snell, riley_binary


def test_paper_example_criterion_one():
    # Riley et al.'s worked example: 24 parameters, prevalence 0.174, anticipated R2cs 0.288.
    # (i) 24 / ((0.9 - 1) ln(1 - 0.288 / 0.9)) = 24 / (0.1 x 0.385662) = 622.3 -> 623 (as published).
    s = riley_binary(24, 0.174, 0.288)
    assert s.n_shrinkage == 623
    # max R2cs = 1 - exp(2 (0.174 ln 0.174 + 0.826 ln 0.826)) = 1 - exp(-0.924356) = 0.60321
    assert s.max_r2_cox_snell == pytest.approx(0.60321, abs=1e-5)
    # (ii) S = 0.288 / (0.288 + 0.05 x 0.60321) = 0.90520; 24 / (0.09480 x -ln(1 - 0.288 / 0.90520)) = 661.1 -> 662
    assert s.shrinkage_for_optimism == pytest.approx(0.90520, abs=1e-5)
    assert s.n_optimism == 662
    # (iii) (1.96 / 0.05)^2 x 0.174 x 0.826 = 1536.64 x 0.143724 = 220.85 -> 221
    assert s.n_overall_risk == 221
    assert s.required_n == 662 and s.required_events == math.ceil(662 * 0.174)


def test_default_r2_is_fifteen_percent_of_the_maximum():
    # Prevalence 0.5: max R2cs = 1 - (0.5^0.5 x 0.5^0.5)^2 = 0.75; default R2cs = 0.1125.
    s = riley_binary(10, 0.5)
    assert s.max_r2_cox_snell == pytest.approx(0.75)
    assert s.r2_cox_snell == pytest.approx(0.1125)
    # (i) 10 / (0.1 x -ln(1 - 0.1125 / 0.9)) = 10 / (0.1 x 0.133531) = 748.9 -> 749
    assert s.n_shrinkage == 749
    # (ii) S = 0.1125 / (0.1125 + 0.0375) = 0.75; 10 / (0.25 x -ln(0.85)) = 246.1 -> 247
    assert s.shrinkage_for_optimism == pytest.approx(0.75)
    assert s.n_optimism == 247
    # (iii) 1536.64 x 0.25 = 384.16 -> 385
    assert s.n_overall_risk == 385
    assert s.required_n == 749 and s.required_events == 375


def test_rare_outcomes_need_far_more_rows():
    common, rare = riley_binary(56, 0.08), riley_binary(56, 0.005)
    assert rare.required_n > 5 * common.required_n
    assert max_r2_cox_snell(0.005) == pytest.approx(
        1 - math.exp(2 * (0.005 * math.log(0.005) + 0.995 * math.log(0.995)))
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(parameters=5, prevalence=0.0),
        dict(parameters=5, prevalence=1.2),
        dict(parameters=0, prevalence=0.1),
        dict(parameters=5, prevalence=0.1, r2_cox_snell=0.9),
    ],
)
def test_impossible_inputs_are_refused(kwargs):
    with pytest.raises(ValueError):
        riley_binary(**kwargs)
