# outrider — every job the README names. Targets install what they need on a fresh Debian 12 + Python 3.11.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# OUTRIDER_PURE_PYTHON=1 (in the environment or on make's command line): nothing compiled (setup.py); a stamp
# per mode, so that switching rebuilds.
PURE    := $(filter-out 0,$(OUTRIDER_PURE_PYTHON))
STAMP   := $(VENV)/.installed-stamp$(if $(PURE),-pure)
MODELS  := models/digits.onnx
# The modules mypyc compiles (pyproject.toml's [tool.outrider] compiled): the install is rebuilt when one of
# them changes, or its extension would go on shadowing the edited source (plumbing.compiled refuses that).
COMPILED := $(shell $(PY) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["tool"]["outrider"]["compiled"])')

.PHONY: install models demo test check lint typecheck fmt bench bench-deps browser-deps stats-bench reliability schema clean interop

$(STAMP): pyproject.toml setup.py $(COMPILED)
	@[ -n "$(PURE)" ] || { command -v gcc >/dev/null && \
	  test -f "$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("include"))')/Python.h"; } || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc python3-dev >/dev/null; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-stamp*
	touch $(STAMP)

install: $(STAMP)  ## the virtual environment with outrider and its dev tools

$(MODELS): $(STAMP) modelserver/build_models.py modelserver/onnx_graphs.py modelserver/testset.py
	$(BIN)/python -m modelserver.build_models --out models

models: $(MODELS)  ## train and export the reference ONNX models (seconds, no download)

demo: $(MODELS)  ## two model versions behind outrider, thousands of sticky users, a printed scorecard
	$(BIN)/outrider demo

browser-deps:  ## Debian's chromium (tests/browser: playwright drives it, never downloads a browser), promtool, redis-server
	@test -x /usr/bin/chromium -a -x /usr/bin/promtool -a -x /usr/bin/redis-server || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    chromium prometheus redis-server >/dev/null; }

test: $(MODELS) browser-deps  ## the default test run (< 10 min)
	$(BIN)/pytest

interop: $(MODELS)  ## MLServer (the `mlserver` extra) behind outrider: label agreement, versioned paths, health
	$(BIN)/pip install -q -e '.[dev,mlserver]'
	$(BIN)/pytest -m interop tests/integration/test_mlserver.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test  ## what CI runs: format + lint + types + tests

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

schema: $(STAMP)  ## regenerate experiments/schema.json and docs/settings.md after changing the config models
	$(BIN)/outrider schema > experiments/schema.json
	$(BIN)/python -m proxy.settings.cli > docs/settings.md

bench-deps:
	@command -v nginx >/dev/null && command -v wrk >/dev/null && command -v hey >/dev/null && \
	  { command -v haproxy >/dev/null || test -x /usr/sbin/haproxy; } && test -x /usr/bin/redis-server || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk hey haproxy redis-server >/dev/null; }
	$(BIN)/pip install -q -e '.[dev,bench]'

bench: $(MODELS) bench-deps  ## direct vs nginx vs outrider vs a bare forwarder, then --workers 1 vs 2 and the Redis store, then the planes' added p50 at one connection; figures in docs/benchmarks.md
	$(BIN)/python -m loadtests.bench
	$(BIN)/python -m loadtests.bench_dataplane --rounds 3 --seconds 5

reliability: $(MODELS) browser-deps  ## the slow suites (load, soak, long calibration): `-m slow`, not in the default run
	$(BIN)/pytest -m slow

stats-bench: $(STAMP)  ## the engine's error rates and times to decide over 1000 runs per row (not in CI; minutes)
	$(BIN)/python -m analysis.stats_bench

clean:
	rm -rf $(VENV) outrider-data .mypy_cache .ruff_cache .pytest_cache build
	find proxy experiments plumbing -name '*.so' -delete
	rm -f plumbing/compiled.json
