# Two entry points for a fresh machine: `make demo` and `make test` (see README.md).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test unit venv host-deps lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/.installed

host-deps:
	scripts/host-deps

# The whole suite: unit, pyinfra fixture and sandbox integration tests.
test: venv host-deps
	$(BIN)/pytest

# Guardrails: lint rules (ruff), types (mypy on lpfleet/), the layering contracts (import-linter). Config: pyproject.toml.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Fast feedback while editing: no sandbox.
unit: venv
	$(BIN)/pytest tests/unit tests/ops

# Sandbox fleet end to end (docs/sandbox.md): up, lock, deploy, deploy again (0 changes), verify.
DEMO_NODES ?= 3
demo: venv host-deps
	$(BIN)/python -m lpfleet.sandbox.demo --nodes $(DEMO_NODES)

clean:
	rm -rf $(VENV) .pytest_cache
