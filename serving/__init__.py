"""Answering the HIS, clinicians and batch jobs."""
