"""Reproducible performance runs of doow-pipeline (design §8): `python -m benchmarks.run`. See README.md."""
