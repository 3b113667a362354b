# zizhi — the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export ZIZHI_DATA_DIR ?= $(CURDIR)/data
SANDBOX_PORT ?= 8765
FORCE ?=

.PHONY: install demo dev refresh migrate test bench lint sandbox clean

install: $(STAMP)

# pip's own chatter goes to a log, shown only when the install fails.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing zizhi into $(VENV) (log: $(VENV)/install.log)"
	@{ $(BIN)/python -m pip install --disable-pip-version-check --upgrade pip && \
	   $(BIN)/python -m pip install --disable-pip-version-check -e '.[dev]'; } \
	   > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@touch $(STAMP)

migrate: install
	@$(BIN)/python -m pipelines.cli migrate

demo: install
	@$(BIN)/python -m pipelines.cli demo --port $(SANDBOX_PORT)

refresh: install
	@$(BIN)/python -m pipelines.cli refresh $(if $(FORCE),--force,)

dev: install
	@$(BIN)/python -m pipelines.cli dev --port $(SANDBOX_PORT)

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
