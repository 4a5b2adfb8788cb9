# Shortcuts; the README's two commands (scripts/setup.sh) need no make.
PY := .venv/bin/python

.PHONY: setup demo test lint format typecheck migrate db-start db-stop check bench

setup:
	bash scripts/setup.sh setup
demo:
	bash scripts/setup.sh demo
test:
	bash scripts/setup.sh test
lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
format:
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .
typecheck:
	$(PY) -m mypy
migrate:
	$(PY) -m store migrate
check:
	$(PY) -m store check
db-start:
	$(PY) -m store local start
db-stop:
	$(PY) -m store local stop
bench:
	$(PY) benchmarks/demo_generation.py
