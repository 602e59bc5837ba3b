# Two commands matter: `make demo` runs the monitor on synthetic traffic, `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# End-to-end tests (tests/e2e): selenium in the venv; chromium, chromium-driver and promtool from Debian.
E2E_STAMP := $(VENV)/.e2e-installed
E2E_APT   := chromium chromium-driver prometheus
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint unit integration e2e e2e-deps bench significance clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

$(E2E_STAMP): $(STAMP)
	$(BIN)/pip install --quiet 'selenium>=4.10'
	touch $(E2E_STAMP)

# The one command that installs what tests/e2e needs (make test names it when it leaves tests out).
e2e-deps: $(E2E_STAMP)
	$(SUDO) apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(E2E_APT)

demo: $(STAMP)
	$(BIN)/monitor demo

lint: $(STAMP)
	$(BIN)/ruff check monitor tests benchmarks
	$(BIN)/mypy

test: lint $(E2E_STAMP)
	$(BIN)/pytest -q

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit monitor

integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

e2e: $(E2E_STAMP)
	$(BIN)/pytest -q tests/e2e

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache

# False alarms over 1,000+ stationary streams and detection delays per detector: writes docs/significance.md.
significance: $(STAMP)
	$(BIN)/python -m benchmarks.significance

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run
