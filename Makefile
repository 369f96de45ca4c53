# anonsign: two commands.
#   make run   - a demo petition on SQLite at http://127.0.0.1:5000 (venv, install, init, demo keys)
#   make test  - every test, plus the linters
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 5000
# Two workers: xdist spreads the suite over this machine's two cores.
PYTEST_WORKERS ?= 2

.PHONY: run test lint install clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "anonsign needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/anonsign demo --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench deploy
	$(BIN)/ruff format --check src tests bench deploy
	$(BIN)/mypy

# The timing measurements run on their own after the rest, on a machine no other test
# loads: a membership oracle by time is a few percent, and so is a busy neighbour.
test: lint
	$(BIN)/pytest -n $(PYTEST_WORKERS) -m "not timing"
	$(BIN)/pytest -n 0 -m timing

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache .mypy_cache test-artifacts
