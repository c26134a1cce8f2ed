# Elimu Gateway — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench bench-smoke install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## Serve on 127.0.0.1:8000 with embedded defaults (SQLite, in-process Redis, SMS outbox) and demo data.
run: $(STAMP)
	$(BIN)/elimu db upgrade
	$(BIN)/elimu demo seed --if-empty
	$(BIN)/elimu serve --host 127.0.0.1 --port 8000

## All tests. Tests needing PostgreSQL/Redis skip with a reason when absent (CI makes them required).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -n 2 --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m bench

bench-smoke: $(STAMP)
	$(BIN)/python -m bench --smoke

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache
