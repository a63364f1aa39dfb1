"""Producing and judging model versions: training, evaluation, the MLflow registry."""
