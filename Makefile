# Two commands for a fresh machine with Python 3.11+: `make demo` and `make test`.
# Each creates .venv and installs what it needs; nothing else is required.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
FAULT  ?=
PROVIDER ?=
PYTEST_ARGS ?=
# Two workers: the suite's drills are mostly waiting on real processes, and serially it passes 15 minutes.
TEST_WORKERS ?= 2
BENCH_ARGS ?=

.PHONY: demo test lint bench venv clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "payment-probe needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/payment-probe demo $(if $(FAULT),--fault $(FAULT)) $(if $(PROVIDER),--provider $(PROVIDER))

test: $(STAMP)
	$(BIN)/python -m pytest tests -n $(TEST_WORKERS) $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check synthetics runner sandbox tests bench conftest.py
	$(BIN)/mypy synthetics runner sandbox

# The footprint and fidelity figures compare against blackbox_exporter: installed from Debian when
# missing, so they are never silently skipped.
bench: $(STAMP)
	@command -v prometheus-blackbox-exporter >/dev/null 2>&1 || { \
	  echo "make bench: installing prometheus-blackbox-exporter (Debian) for the baseline figures"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    prometheus-blackbox-exporter >/dev/null) || { echo "make bench: cannot install prometheus-blackbox-exporter" >&2; exit 2; }; }
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV)
