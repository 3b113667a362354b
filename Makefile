# zizhi — the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# `make install` runs uv at this version (PyPI's `uv`, installed into the venv by pip); the dev
# extra in pyproject.toml pins the same one (tests/test_packaging.py checks they agree).
UV_VERSION := 0.13.9
# INSTALLER=pip: install the same locked versions from requirements.lock with pip alone.
INSTALLER ?= uv
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export ZIZHI_DATA_DIR ?= $(CURDIR)/data
SANDBOX_PORT ?= 8765
FORCE ?=

# uv on the venv's own interpreter (never one it downloads), compiling bytecode as pip does:
# without .pyc files every start of zizhi would recompile Dagster (10 s instead of 3-5 s).
UV := env -u VIRTUAL_ENV UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 \
	UV_PROJECT_ENVIRONMENT=$(VENV) $(BIN)/python -m uv
PIP := $(BIN)/python -m pip --disable-pip-version-check
# Installs uv $(UV_VERSION) into the venv unless it is there; fails when pip cannot get it.
HAVE_UV := { $(BIN)/python -m uv --version 2>/dev/null | grep -q "^uv $(UV_VERSION) " || \
	$(PIP) install "uv==$(UV_VERSION)"; }
UV_SYNC := $(UV) sync --locked --extra dev
PIP_SYNC := $(PIP) install --no-deps -r requirements.lock && $(PIP) install --no-deps -e .

.PHONY: install lock defs demo dev refresh migrate test bench lint sandbox clean

install: $(STAMP)

# uv.lock pins every package (all platforms); `uv sync --locked` installs exactly those and fails
# when pyproject.toml changed without `make lock`. Without uv (INSTALLER=pip, or pip cannot
# install uv) pip installs the same pins from requirements.lock. The chatter goes to a log, shown
# only when the install fails.
$(STAMP): pyproject.toml uv.lock requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing zizhi into $(VENV) with $(INSTALLER) (log: $(VENV)/install.log)"
	@if [ "$(INSTALLER)" = pip ]; then \
	   { $(PIP_SYNC); } > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }; \
	 elif $(HAVE_UV) > $(VENV)/install.log 2>&1; then \
	   $(UV_SYNC) >> $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; \
	     echo "uv.lock does not match pyproject.toml? run \`make lock\` and commit both locks"; \
	     exit 1; }; \
	 else \
	   echo "pip could not install uv $(UV_VERSION); installing requirements.lock with pip"; \
	   { $(PIP_SYNC); } >> $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }; \
	 fi
	@touch $(STAMP)

# After changing a dependency in pyproject.toml: re-resolve uv.lock and export its pip twin.
lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(HAVE_UV) > /dev/null
	@$(UV) lock
	@$(UV) export --locked --extra dev --no-emit-project --no-header -q -o requirements.lock

# zizhi's Dagster home as the CLI makes it (owner only, deploy/dagster.yaml: telemetry off), so
# `dg` prints no telemetry banner and no missing-instance warning.
$(DAGSTER_HOME)/dagster.yaml:
	@mkdir -p -m 700 $(DAGSTER_HOME)
	@install -m 600 deploy/dagster.yaml $@

# What Dagster sees in the code location `zizhi` ([tool.dg] in pyproject.toml).
defs: install $(DAGSTER_HOME)/dagster.yaml
	@$(BIN)/dg list defs
	@$(BIN)/dg check defs

migrate: install
	@$(BIN)/zizhi migrate

demo: install
	@$(BIN)/zizhi demo --port $(SANDBOX_PORT)

refresh: install
	@$(BIN)/zizhi refresh $(if $(FORCE),--force,)

dev: install
	@$(BIN)/zizhi dev --port $(SANDBOX_PORT)

sandbox: install
	@$(BIN)/python -m juhe_sandbox --port $(SANDBOX_PORT)

test: install
	@bash tests/run_suites.sh

bench: install
	@$(BIN)/python -m bench

lint: install
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy

clean:
	rm -rf $(VENV) data .dagster_home
