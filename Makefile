# Two commands from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
PLUGINS := $(wildcard plugins/*/pyproject.toml)
# dlcore is a distribution of its own; dljobs depends on it, so both go in one pip call.
DLCORE := ./dlcore

.PHONY: install install-runtime test test-fast bench demo lint clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Re-install when the project's or a plugin's metadata changes.
$(STAMP): $(VENV)/bin/python pyproject.toml dlcore/pyproject.toml $(PLUGINS)
	$(PIP) install -q -e $(DLCORE) -e '.[test]'
	for p in $(dir $(PLUGINS)); do $(PIP) install -q -e "$$p" || exit 1; done
	touch $(STAMP)

install: $(STAMP)

# The demo needs no test extras (no torch).
$(VENV)/.runtime: $(VENV)/bin/python pyproject.toml dlcore/pyproject.toml $(PLUGINS)
	$(PIP) install -q -e $(DLCORE) -e .
	touch $(VENV)/.runtime

install-runtime: $(VENV)/.runtime

# Two processes (one per core): the fault and service tests mostly wait on real servers and
# workers, so the suite takes about half its serial time. A file runs in one process.
test: install
	$(PY) -m pytest -n auto --dist loadfile --durations=15 --cov=dlcore --cov-report=term:skip-covered --cov-fail-under=90 $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -m "not slow and not service" -q $(PYTEST_ARGS)

bench: install
	$(PY) -m bench

demo: install-runtime
	$(PY) -m dljobs.demo

# ruff and import-linter come with the test extra, so a fresh clone lints with no other step.
lint: install
	$(PY) -m ruff check dlcore api workers dljobs tests plugins bench
	$(VENV)/bin/lint-imports pyproject.toml

clean:
	rm -rf $(VENV) .pytest_cache .coverage htmlcov
