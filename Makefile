# Two commands set everything up: `make demo` (the main job) and `make test`.
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
PY := .venv/bin/python

.PHONY: setup test-servers demo test test-fast lint bench dev clean

$(UV):
	python3 -m pip install --quiet --user "uv==0.13.8"

setup: $(UV)
	$(UV) sync --frozen

test-servers:  ## PostgreSQL, Chromium + ChromeDriver (Debian), Azurite (npm, into .tools/); fast when present
	scripts/install-test-servers

demo: setup  ## sync the bundled demo estate through the local Azure emulator, print a usage summary
	$(PY) -m doow_pipeline_tests.demo --days 30 --workdir .demo

test: setup test-servers  ## the whole test suite, against the emulator
	$(PY) -m pytest -n 2 doow_pipeline_tests

test-fast: setup test-servers
	$(PY) -m pytest -n 2 doow_pipeline_tests -m "not slow"

lint: setup  ## ruff (lint and format check) and mypy (strict on core/, azure/, usage/, warehouse/)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

bench: setup  ## benchmarks/ (see benchmarks/README.md)
	$(PY) -m benchmarks.run

dev: setup  ## the demo (emulator + 30-day sync) in the Dagster UI with the daemon at http://127.0.0.1:3000; Ctrl-C stops all
	$(PY) -m doow_pipeline_tests.demo --days 30 --workdir .demo --serve

clean:
	rm -rf .demo .pytest_cache data
