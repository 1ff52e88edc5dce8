"""A faithful local Azure (Entra ID, ARM, Azure Monitor) for tests, the demo and the benchmarks."""

from pathlib import Path

# The demo estate used by the README's main command and the end-to-end tests.
DEMO_SCENARIO = Path(__file__).parent / "scenarios" / "demo.yaml"
# 1,000 accounts x 10 deployments with 50 ms latency per call, for benchmarks/.
SCALE_SCENARIO = Path(__file__).parent / "scenarios" / "scale.yaml"
