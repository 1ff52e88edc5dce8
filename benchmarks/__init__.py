"""Reproducible performance runs of doow-pipeline: `python -m benchmarks.run`. See README.md."""
