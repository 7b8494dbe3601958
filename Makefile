# Two entry points a new user needs; both set up .venv themselves and are safe to run twice.
VENV := .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo-out

.PHONY: setup test lint demo clean

setup:
	bash scripts/setup.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q

demo: setup
	bash scripts/demo.sh $(DEMO_OUT)

clean:
	rm -rf $(DEMO_OUT) .pytest_cache .ruff_cache
