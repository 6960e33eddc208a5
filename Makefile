# Two commands a new user needs: `make run` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# Which Python: 3.11+ is needed. A .venv made by another or an older Python (or one whose
# interpreter is gone) is rebuilt rather than left broken.
ABOUT := import sys; print(sys.version_info >= (3, 11), sys.base_prefix, "%d.%d" % sys.version_info[:2])
WANT := $(shell $(PYTHON) -c '$(ABOUT)' 2>/dev/null)
HAVE := $(shell $(BIN)/python -c '$(ABOUT)' 2>/dev/null)
ifneq ($(firstword $(WANT)),True)
$(error parley needs Python 3.11 or newer, and `$(PYTHON)` is $(or $(lastword $(WANT)),not found): run `make PYTHON=python3.11 ...` with a newer one)
endif
ifneq ($(HAVE),$(WANT))
ifneq ($(wildcard $(VENV)),)
$(info .venv was made by another Python ($(or $(lastword $(HAVE)),gone)); making it again with $(lastword $(WANT)))
$(shell rm -rf $(VENV))
endif
endif

.PHONY: run test lint typecheck layers unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

# parley's own exit status stays make's: 2 is a configuration problem, said in one line.
run: $(VENV)/.installed
	@$(BIN)/parley run

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy core storage models bots

layers: $(VENV)/.installed-dev
	$(BIN)/lint-imports

unit: $(VENV)/.installed-dev
	$(BIN)/pytest

test: lint typecheck layers unit

bench: $(VENV)/.installed-dev
	$(BIN)/python -m tests.bench.engine

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
