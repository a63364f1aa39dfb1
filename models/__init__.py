"""The mathematics of risk: outcome models, calibration, explanations, baselines."""
