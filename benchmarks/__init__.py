"""Benchmarks of musicstems: ``python -m benchmarks`` (see run.py). Not part of the package."""
