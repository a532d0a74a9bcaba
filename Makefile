# ml-batch developer commands. Everything runs from the project's own virtualenv (.venv), created on demand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-k registry -x"`.
PYTEST_ARGS ?=

.PHONY: setup test unit lint demo airflow bench db-up db-down clean lock

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

## setup: create .venv and install the pinned requirements plus ml-batch (editable, with the `ml-batch` CLI)
setup: $(STAMP)

## test: the whole suite (starts its own throwaway PostgreSQL; uses ML_BATCH_DATABASE_URL when set)
test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## unit: the tests that need no database
unit: setup
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

## lint: ruff + mypy
lint: setup
	$(BIN)/ruff check ml_batch dags plugins tests
	$(BIN)/mypy ml_batch

## demo: the main job end to end on the embedded PostgreSQL
demo: setup
	$(BIN)/ml-batch demo run

## airflow: a local Airflow (UI/API on http://localhost:8080) with the DAGs and the ml_batch_db connection
airflow: setup
	$(BIN)/ml-batch db up
	$(BIN)/ml-batch airflow standalone

db-up: setup
	$(BIN)/ml-batch db up

db-down: setup
	$(BIN)/ml-batch db down

## bench: throughput and memory of the scoring path vs the naive pattern (see benchmarks/README in the README)
bench: setup
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

## lock: re-pin requirements.txt from the current .venv (after changing dependencies and passing the tests)
lock: setup
	{ head -n 2 requirements.txt; $(BIN)/python -m pip freeze --all --exclude-editable | grep -v "^pip==" | LC_ALL=C sort -f; } > requirements.txt.new
	mv requirements.txt.new requirements.txt

clean:
	-$(BIN)/ml-batch db down
	rm -rf $(VENV) .ml_batch .pytest_cache .mypy_cache .ruff_cache
