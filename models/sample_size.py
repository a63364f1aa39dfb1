"""Minimum sample size for developing a prediction model of a binary outcome.

Riley RD, Ensor J, Snell KIE, et al. Calculating the sample size required for developing a
clinical prediction model. BMJ 2020;368:m441 (binary outcomes, criteria (i)-(iii)):

(i)   expected uniform shrinkage S >= 0.9:   n = p / ((S - 1) ln(1 - R2cs / S));
(ii)  optimism in Nagelkerke's R2 <= delta:  the same formula with
      S = R2cs / (R2cs + delta * max(R2cs)), where max(R2cs) = 1 - exp(2 lnL_null / n)
      = 1 - (phi^phi (1 - phi)^(1 - phi))^2 for outcome proportion phi;
(iii) overall risk estimated within +/- margin (95 %):  n = (1.96 / margin)^2 phi (1 - phi).

The required size is the largest of the three. With nothing known about the anticipated
Cox-Snell R2, Riley et al. suggest 15 % of max(R2cs) for the outcome's prevalence.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

DEFAULT_SHRINKAGE = 0.9
DEFAULT_OPTIMISM = 0.05
DEFAULT_MARGIN = 0.05
# Share of the maximum Cox-Snell R2 assumed when no earlier model tells what to expect (Riley 2020).
DEFAULT_R2_SHARE = 0.15


def max_r2_cox_snell(prevalence: float) -> float:
    """The largest Cox-Snell R2 a model can reach for an outcome of this proportion."""
    _check_prevalence(prevalence)
    ln_null = prevalence * math.log(prevalence) + (1.0 - prevalence) * math.log(1.0 - prevalence)
    return 1.0 - math.exp(2.0 * ln_null)


def _n_for_shrinkage(parameters: int, r2_cs: float, shrinkage: float) -> float:
    return parameters / ((shrinkage - 1.0) * math.log(1.0 - r2_cs / shrinkage))


def _check_prevalence(prevalence: float) -> None:
    if not 0.0 < prevalence < 1.0:
        raise ValueError(f"outcome prevalence must lie strictly between 0 and 1, not {prevalence}")


@dataclass(frozen=True)
class SampleSize:
    """The three criteria's required sizes (rows), the largest of them, and the assumptions."""

    parameters: int
    prevalence: float
    r2_cox_snell: float
    max_r2_cox_snell: float
    n_shrinkage: int  # criterion (i)
    shrinkage_for_optimism: float  # S that criterion (ii) implies
    n_optimism: int  # criterion (ii)
    n_overall_risk: int  # criterion (iii)
    required_n: int
    required_events: int

    def as_dict(self) -> dict:
        return asdict(self)


def riley_binary(
    parameters: int,
    prevalence: float,
    r2_cox_snell: float | None = None,
    shrinkage: float = DEFAULT_SHRINKAGE,
    optimism: float = DEFAULT_OPTIMISM,
    margin: float = DEFAULT_MARGIN,
) -> SampleSize:
    """Riley et al.'s minimum sample size for `parameters` candidate predictor parameters.

    `r2_cox_snell`: the anticipated Cox-Snell R2; by default 15 % of its maximum for `prevalence`.
    Sizes are rounded up to whole rows, as in the paper.
    """
    _check_prevalence(prevalence)
    if parameters < 1:
        raise ValueError(f"need at least one candidate parameter, not {parameters}")
    max_r2 = max_r2_cox_snell(prevalence)
    r2 = DEFAULT_R2_SHARE * max_r2 if r2_cox_snell is None else float(r2_cox_snell)
    if not 0.0 < r2 < max_r2:
        raise ValueError(f"anticipated Cox-Snell R2 {r2} must lie in (0, {max_r2:.4f}) for prevalence {prevalence}")
    n1 = math.ceil(_n_for_shrinkage(parameters, r2, shrinkage))
    s2 = r2 / (r2 + optimism * max_r2)
    n2 = math.ceil(_n_for_shrinkage(parameters, r2, s2))
    n3 = math.ceil((1.96 / margin) ** 2 * prevalence * (1.0 - prevalence))
    required = max(n1, n2, n3)
    return SampleSize(
        parameters=parameters,
        prevalence=prevalence,
        r2_cox_snell=r2,
        max_r2_cox_snell=max_r2,
        n_shrinkage=n1,
        shrinkage_for_optimism=s2,
        n_optimism=n2,
        n_overall_risk=n3,
        required_n=required,
        required_events=math.ceil(required * prevalence),
    )
