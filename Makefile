# segkit — every entry point a newcomer needs. Python 3.11+, no conda needed.
# `make report` and `make test` are the two commands of the README; both are idempotent.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
KERNEL := segkit
PYTEST_ARGS ?=

.PHONY: report test lab bench bench-smoke nbval-refresh clean help

help:
	@echo "make report   set up .venv and run the whole pipeline on the bundled sample (HTML under reports/)"
	@echo "make test     set up .venv with dev extras and run the full test suite (unit, notebooks, browser)"
	@echo "make lab      open JupyterLab on notebooks/ with the segkit kernel"
	@echo "make bench    run the benchmark suite (reports/bench/results.json + results.md)"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Base install: re-run when the project metadata changes.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (segkit)" > /dev/null
	@touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $@

report: $(VENV)/.installed
	$(BIN)/segkit run

test: $(VENV)/.installed-dev
	rm -rf reports/interactive
	$(PY) tests/browser_setup.py
	$(PY) -m pytest -n 2 --dist loadfile --nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval/sanitize.cfg $(PYTEST_ARGS) tests

lab: $(VENV)/.installed
	$(BIN)/jupyter lab --notebook-dir=notebooks

bench: $(VENV)/.installed-dev
	$(PY) -m segkit.bench

bench-smoke: $(VENV)/.installed-dev
	$(PY) -m segkit.bench --smoke

# Re-execute the notebooks and store them (with outputs) as the nbval regression copies.
nbval-refresh: $(VENV)/.installed-dev
	$(PY) -m segkit.report refresh-nbval

clean:
	rm -rf $(VENV) reports/interactive .pytest_cache
