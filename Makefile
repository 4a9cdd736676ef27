# Fidelia: `make run` (embedded default) and `make test` (whole suite), on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
HOST    ?= 127.0.0.1
PORT    ?= 8000

.PHONY: venv dev run test lint typecheck unit bench bench-quick reliability clean

venv: $(VENV)/.runtime
$(VENV)/.runtime: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . || \
		$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

dev: $(VENV)/.dev
$(VENV)/.dev: $(VENV)/.runtime requirements-dev.lock
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.lock
	touch $@

run: venv
	$(BIN)/fidelia migrate
	FIDELIA_PUBLIC_URL=http://$(HOST):$(PORT) $(BIN)/fidelia demo
	FIDELIA_PUBLIC_URL=http://$(HOST):$(PORT) $(BIN)/fidelia serve --host $(HOST) --port $(PORT)

lint: dev
	$(BIN)/ruff check fidelia tests $(wildcard bench)
	$(BIN)/ruff format --check fidelia tests $(wildcard bench)

typecheck: dev
	$(BIN)/mypy fidelia

test: dev
	scripts/ensure-services.sh
	$(MAKE) --no-print-directory lint typecheck
	$(BIN)/pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
