# Every target that needs Python creates .venv first, so `make run` and
# `make test` work on a fresh clone with nothing but python3.11 and pip.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: run test lint format bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/tftrain fit configs/quickstart.yaml --run-dir runs/quickstart

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check tftrain tests bench
	$(BIN)/ruff format --check tftrain tests bench

format: $(STAMP)
	$(BIN)/ruff format tftrain tests bench
	$(BIN)/ruff check --fix tftrain tests bench

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf runs .pytest_cache
