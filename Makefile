# Two entry points, each sets up its own environment in .venv first:
#   make demo   run the demo on the local stack (no cloud account needed)
#   make test   lint, format check, type check and the test suite
# Both install what constraints.txt pins, so every machine runs the versions CI ran;
#   make lock   resolves the newest releases again and rewrites constraints.txt
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
CLOUD ?= all

# The package's folders: adding or removing a module in one makes the editable tree again.
PACKAGE_DIRS := $(shell find adapters external orchestration components local examples -type d -not -name __pycache__)
STRICT_EDITABLE := -e . --config-settings editable_mode=strict

.PHONY: demo test lint typecheck docs pytest bench clean lock dist .checkov

# Every Python package of the environment, pinned: refreshed on purpose with `make lock`.
CONSTRAINTS := constraints.txt

# Node tools of the local stack (Azurite), as package-lock.json pins them, in node_modules/.
NODE_TOOLS := node_modules/.installed
# checkov scans infra/ from a venv of its own, so it cannot change the project's dependencies.
CHECKOV_VERSION := 3.3.30
CHECKOV := .checkov/bin/checkov
CHECKOV_CONSTRAINTS := constraints-checkov.txt

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --constraint $(CONSTRAINTS) \
		-e '.[dev]' --config-settings editable_mode=strict
	touch $@

# Resolve '.[dev]' afresh in a scratch venv and pin what it installed (the project itself aside).
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet '.[dev]'
	{ echo "# Pins for make demo and make test; rewritten by make lock (resolved $$(date -u +%F))."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | grep -iv '^dagster-pipes-cloud' \
	    | grep -iv '^pip=='; } > $(CONSTRAINTS)
	rm -rf .lock-venv build/lib
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet checkov==$(CHECKOV_VERSION)
	{ echo "# Pins for checkov's own venv; rewritten by make lock (resolved $$(date -u +%F))."; \
	  .lock-venv/bin/python -m pip freeze | grep -iv '^pip=='; } > $(CHECKOV_CONSTRAINTS)
	rm -rf .lock-venv

# A strict editable install: build/__editable__.*/dagster_pipes_cloud is a tree of links to the
# sources, on a plain path that type checkers and IDEs follow, holding exactly the modules a
# wheel installs (the top-level folders mapped onto the dagster_pipes_cloud package).
$(VENV)/.linked: $(VENV)/.installed $(PACKAGE_DIRS)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation $(STRICT_EDITABLE)
	touch $@

$(NODE_TOOLS): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

demo: $(VENV)/.linked $(NODE_TOOLS)
	$(BIN)/dagster-pipes-cloud demo --cloud $(CLOUD)

test: lint typecheck docs pytest

lint: $(VENV)/.linked
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The type checker reads the package through the editable tree: the modules users import.
typecheck: $(VENV)/.linked
	cd build/__editable__.dagster_pipes_cloud-*/ && \
		$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml -p dagster_pipes_cloud

# The API reference from the docstrings, and the README as its guide, in build/site; strict, so
# a docstring mkdocstrings cannot read fails the build.
docs: $(VENV)/.linked
	$(BIN)/mkdocs build --strict --quiet

# The sdist, and the wheel built from it, in dist/, checked as an index checks an upload (the
# metadata, the README as PyPI renders it). Built with the pinned setuptools, offline; the
# tests build and install them too (tests/test_distribution.py).
dist: $(VENV)/.linked
	rm -f dist/dagster_pipes_cloud-*
	$(BIN)/python -m build --no-isolation --quiet --outdir dist .
	$(BIN)/twine check --strict dist/dagster_pipes_cloud-*

$(CHECKOV): $(CHECKOV_CONSTRAINTS)
	$(PYTHON) -m venv .checkov
	.checkov/bin/python -m pip install --quiet --constraint $(CHECKOV_CONSTRAINTS) \
		checkov==$(CHECKOV_VERSION)
	touch $@

.checkov: $(CHECKOV)

pytest: $(VENV)/.linked $(NODE_TOOLS) $(CHECKOV)
	$(BIN)/pytest --numprocesses=auto --maxprocesses=4 --dist=loadfile --durations=15

# Every benchmark on the three clouds' local stacks, then benchmarks/RESULTS.md and its chart
# (about 32 minutes on 2 cores; BENCH_ARGS=--quick for a shorter look).
bench: $(VENV)/.linked $(NODE_TOOLS)
	$(BIN)/python benchmarks/suite.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/report.py

clean:
	rm -rf $(VENV) build node_modules .checkov .lock-venv
