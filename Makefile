# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create a virtual environment in $(VENV) and install yinqi into it first.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# test processes (pytest-xdist): `auto` is one per core; 0 runs the tests in this process
TEST_WORKERS ?= auto

.PHONY: install demo test lint bench contracts clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: install
	$(VENV)/bin/yinqi demo

test: install
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# ruff (lint + format) and mypy (strict on federation/, contracts/, iot/), as CI runs them.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/fl.py && $(PY) bench/anchor.py && $(PY) bench/iot.py && $(PY) bench/bank.py

# Recompile the Solidity sources with npm's solc and compare against the committed artifacts.
contracts: install
	cd contracts && npm ci --no-audit --no-fund --silent
	$(PY) -m contracts.build --check

clean:
	rm -rf $(VENV) .yinqi build *.egg-info
