# Fidelia: `make run` (embedded default) and `make test` (whole suite), on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
HOST    ?= 127.0.0.1
PORT    ?= 8000
# `make test` runs the suite in two processes (pytest-xdist; one file in one process, so a
# file's shared servers are started once): the suite mostly waits on servers, so two
# processes overlap the waits. Every fixture takes free ports and its own temporary
# directories, so the processes never meet. TEST_PROCESSES=0: serial.
# A crashed process ends the run (--max-worker-restart=0); the 25 slowest tests are listed.
TEST_PROCESSES ?= 2
# The suite runs in random order (pytest-randomly); the seed is printed first.
ifndef TEST_SEED
TEST_SEED := $(shell od -An -N4 -tu4 /dev/urandom | tr -d ' ')
endif

.PHONY: venv dev run test lint typecheck unit bench bench-quick reliability clean assets messages screenshots mutate

venv: $(VENV)/.runtime assets
$(VENV)/.runtime: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	# requirements.lock pins `wheel`, so the editable install builds offline, with no error.
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# The panel's front-end files (htmx, Pico CSS, Chart.js): `npm ci` from package-lock.json,
# copied into fidelia/panel/static/vendor/ (gitignored). setup.py does the same for
# `pip install .`. Needs Node.js and npm once (installed with apt when missing).
PANEL_VENDOR := fidelia/panel/static/vendor/.built
assets: $(PANEL_VENDOR)
$(PANEL_VENDOR): package.json package-lock.json fidelia/panel/assets.py
	command -v npm > /dev/null || scripts/ensure-services.sh npm
	$(PY) fidelia/panel/assets.py
	touch $@

# Extract the panel's strings into its catalogues (then translate the new ones in
# fidelia/panel/locales/{es,pt_BR}/LC_MESSAGES/messages.po; tests/panel/test_i18n.py checks).
messages: venv
	$(BIN)/python -m fidelia.panel.messages

dev: $(VENV)/.dev
$(VENV)/.dev: $(VENV)/.runtime requirements-dev.lock
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.lock
	touch $@

run: venv assets
	FIDELIA_PUBLIC_URL=http://$(HOST):$(PORT) $(BIN)/fidelia serve --demo --host $(HOST) --port $(PORT)

lint: dev
	$(BIN)/ruff check fidelia tests $(wildcard bench)
	$(BIN)/ruff format --check fidelia tests $(wildcard bench)

typecheck: dev
	$(BIN)/mypy fidelia

test: dev assets
	scripts/ensure-services.sh chromium $(BENCH_TOOLS)
	$(MAKE) --no-print-directory lint typecheck
	@echo "random order seed: $(TEST_SEED) (make test TEST_SEED=$(TEST_SEED) repeats the order)"
	$(BIN)/pytest -q -n $(TEST_PROCESSES) --dist loadfile --no-loadscope-reorder --max-worker-restart=0 --durations=25 -p randomly --randomly-seed=$(TEST_SEED) $(PYTEST_ARGS)

# Benchmarks (BENCHMARKS.md): PostgreSQL server and client tools, wrk, the chart and
# profilers (requirements-bench.lock), then one run. BENCH_ARGS="--profile" adds py-spy.
BENCH_TOOLS := wrk pgbench:postgresql psql:postgresql-client

$(VENV)/.bench: $(VENV)/.runtime requirements-bench.lock
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-bench.lock
	touch $@

bench: $(VENV)/.bench
	scripts/ensure-services.sh $(BENCH_TOOLS)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

bench-quick: $(VENV)/.bench
	scripts/ensure-services.sh $(BENCH_TOOLS)
	$(BIN)/python bench/run.py --quick $(BENCH_ARGS)

# Reliability (README "Reliability"): kill -9 under load (Fidelia and PostgreSQL), races,
# schemathesis fuzzing of every door, tenant isolation, then `fidelia check`; prints a
# summary ending in `invariant violations: N`. `make test` runs the same suite in its short
# form (a few minutes); this is the long one.
reliability: dev
	scripts/ensure-services.sh
	FIDELIA_RELIABILITY=long $(BIN)/pytest -q tests/reliability $(PYTEST_ARGS)

# Mutation testing of the core (docs/testing.md, "Mutation testing"): mutmut over the ledger,
# redemptions, orders and refunds, PINs, idempotency, challenges and the outbox worker, each
# with the tests that cover it, on SQLite. Slow (long minutes a module), so not in `make test`.
# MUTATE="ledger pins" runs some modules; prints the score table, exits 1 under 90 %.
mutate: dev
	$(BIN)/python scripts/mutate.py $(MUTATE)

# The panel's pictures in docs/panel/ (README): the browser tests, writing them there.
screenshots: dev assets
	scripts/ensure-services.sh chromium
	FIDELIA_SCREENSHOTS=1 $(BIN)/pytest -q tests/panel/test_browser.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info node_modules fidelia/panel/static/vendor
