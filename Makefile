# Two entry points, each sets up its own environment in .venv first:
#   make demo   run the demo on the local stack (no cloud account needed)
#   make test   lint, format check, type check and the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
CLOUD ?= all

.PHONY: demo test lint typecheck pytest bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/dagster-pipes-cloud demo --cloud $(CLOUD)

test: lint typecheck pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The type checker reads the package as a wheel installs it (the top-level folders mapped onto
# the dagster_pipes_cloud namespace), so it sees exactly the modules users import.
typecheck: $(VENV)/.installed
	rm -rf build/typecheck
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation --target build/typecheck .
	cd build/typecheck && $(BIN)/mypy --config-file ../../pyproject.toml -p dagster_pipes_cloud

pytest: $(VENV)/.installed
	$(BIN)/pytest

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/aws_channel.py
	$(BIN)/python benchmarks/gcp_channel.py

clean:
	rm -rf $(VENV) build
