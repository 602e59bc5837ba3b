# Two commands matter: `make demo` runs the monitor on synthetic traffic, `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# End-to-end tests (tests/e2e): selenium in the venv; chromium, chromium-driver and promtool from Debian.
E2E_STAMP := $(VENV)/.e2e-installed
E2E_APT   := chromium chromium-driver prometheus
E2E_TOOLS := chromium chromedriver promtool
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# make test: test processes (pytest-xdist), one more than the cores. make test-stress: rounds under a CPU hog bounded to STRESS_HOG_S s.
TEST_WORKERS  ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 1 )))
STRESS_ROUNDS ?= 5
STRESS_HOG_S  ?= 10800

# Bytecode goes to one cache in the venv (PYTHONPYCACHEPREFIX), outside the source tree, even where the environment
# sets PYTHONDONTWRITEBYTECODE (empty here is unset): the venv is installed without byte-compiling (--no-compile,
# below), so without a cache every Python process a target starts (make test starts dozens: test workers, monitor
# runs and replays, benchmark phases) would compile numpy, scipy, river and the monitor from source again, about
# 2 s of CPU each, and pytest would rewrite every test module's asserts in every worker.
export PYTHONPYCACHEPREFIX := $(abspath $(VENV))/pycache
export PYTHONDONTWRITEBYTECODE :=

# make image: the container image deploy/kubernetes/*.yaml run (needs Docker; the tag is the package version).
IMAGE   ?= stream-model-monitor
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

.PHONY: demo image test lint unit integration e2e e2e-deps e2e-tools test-stress bench significance peers clean

# The first `make demo` or `make test` builds the environment (about 50 s); each step says what it does.
# --no-compile: pip does not byte-compile every installed package (scipy, scikit-learn, matplotlib, mypy...);
# Python compiles only the modules a run imports, once, on first import, into the cache above (the install step
# 50 -> 30 s, the whole build 59 -> 49 s).
$(STAMP): pyproject.toml setup.py monitor/core/_kernels.pyx
	@echo "==> building the Python environment in $(VENV) (first run only, about a minute)"
	@echo "==> [1/3] creating the virtual environment with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> [2/3] upgrading pip"
	$(BIN)/pip install --quiet --upgrade pip
	@echo "==> [3/3] installing the monitor and its test and demo dependencies (confluent-kafka, river, the Tansu broker...)"
	$(BIN)/pip install --quiet --no-compile -e '.[test]'
	touch $(STAMP)
	@echo "==> environment ready in $(VENV)"

$(E2E_STAMP): $(STAMP)
	$(BIN)/pip install --quiet --no-compile 'selenium>=4.10'
	touch $(E2E_STAMP)

# The one command that installs what tests/e2e needs (make test names it when it leaves tests out).
e2e-deps: $(E2E_STAMP)
	$(SUDO) apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(E2E_APT)

# Called by make test: installs the e2e tests' Debian packages when a tool is missing and this user may
# install packages (root, or sudo without a password). Otherwise, or if apt fails, the run goes on and
# the e2e tests that need the tools are skipped by name with the command that installs them.
e2e-tools:
	@missing=""; for t in $(E2E_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] || sudo -n true 2>/dev/null; then \
		echo "e2e tests need$$missing: installing $(E2E_APT)"; \
		{ $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends $(E2E_APT); } \
			|| echo "WARNING: installing $(E2E_APT) failed; the e2e tests that need them will be left out"; \
	else \
		echo "e2e tests need$$missing and this user cannot install packages: they will be left out (make e2e-deps)"; \
	fi

demo: $(STAMP)
	$(BIN)/monitor demo

image:
	docker build -f deploy/Dockerfile -t $(IMAGE):$(VERSION) .

lint: $(STAMP)
	$(BIN)/ruff check monitor tests benchmarks
	$(BIN)/mypy

# Tests are spread over TEST_WORKERS processes, one more than the cores: several tests mostly wait (for a
# broker, a browser, traffic in real time) and the extra process keeps the cores busy meanwhile. worksteal:
# a process that runs out takes tests from another's queue, so one slow file no longer ends the run alone
# (on 2 cores: 515 s against 686 s for two processes with whole files each).
# mypy (about 25 s of CPU from a clean clone) checks the types while the tests run: the tests leave a tenth of
# the cores idle, waiting on brokers and browsers, and it fills them. Its report follows the tests', and
# either failing fails make test. A background job ignores Ctrl-C in make's shell: the trap stops it.
test: $(STAMP) $(E2E_STAMP) e2e-tools
	$(BIN)/ruff check monitor tests benchmarks
	@echo "==> mypy (its report follows the tests')"
	@$(BIN)/mypy > $(VENV)/mypy.log 2>&1 & types=$$!; \
	trap 'kill $$types 2>/dev/null' EXIT; trap 'exit 130' INT TERM; \
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist worksteal; tests=$$?; \
	wait $$types; typed=$$?; echo "==> mypy"; cat $(VENV)/mypy.log; \
	exit $$(( tests != 0 || typed != 0 ))

# The integration and e2e suites STRESS_ROUNDS times in a row while tests/cpu_hog.py keeps every core busy;
# tests/stress.py prints one summary (per round: pass/fail, failed tests) and fails if any round failed.
# The hog is bounded (STRESS_HOG_S) and killed by its process id when the recipe ends, however it ends.
test-stress: $(E2E_STAMP) e2e-tools
	@$(BIN)/python tests/cpu_hog.py --seconds $(STRESS_HOG_S) & hog=$$!; \
	trap 'kill $$hog 2>/dev/null; wait $$hog 2>/dev/null' EXIT; \
	trap 'exit 130' INT TERM; \
	$(BIN)/python tests/stress.py --rounds $(STRESS_ROUNDS) tests/integration tests/e2e

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit monitor

integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

e2e: $(E2E_STAMP)
	$(BIN)/pytest -q tests/e2e

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache

# False alarms over 1,000+ stationary streams and detection delays per detector: the 1,000,000-event tests
# (make test runs smaller ones), then the experiments that write docs/significance.md.
significance: $(STAMP)
	$(BIN)/pytest -q -m significance tests/unit/test_significance_experiments.py
	$(BIN)/python -m benchmarks.significance

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

# The monitor beside river's ADWIN, PageHinkley and DDM (river's generators) and NannyML's CBPE (NannyML's
# datasets, NannyML in its own venv under .peers/): writes docs/peers.md and docs/peers.png.
peers: $(STAMP)
	$(BIN)/python -m benchmarks.peers
