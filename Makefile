# segkit — every entry point a newcomer needs. Python 3.11+, no conda needed.
# `make report` and `make test` are the two commands of the README; both are idempotent.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
KERNEL := segkit
PYTEST_ARGS ?=

.PHONY: report test lab bench bench-smoke nbval-refresh constraints clean help

help:
	@echo "make report   set up .venv and run the whole pipeline on the bundled sample (HTML under reports/)"
	@echo "make test     set up .venv with dev extras and run the full test suite (unit, notebooks, browser)"
	@echo "make lab      open JupyterLab on notebooks/ with the segkit kernel (notebook outputs kept out of git)"
	@echo "make bench    run the benchmark suite (reports/bench/results.json + results.md)"
	@echo "make constraints  upgrade dependencies within pyproject.toml's ranges and record them in constraints.txt"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Base install: re-run when the project metadata changes.
$(VENV)/.installed: pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install --quiet -c constraints.txt -e .
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (segkit)" > /dev/null
	$(PY) -m segkit.widgets.lab server-config
	@touch $@

$(VENV)/.installed-dev: pyproject.toml constraints.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $@

report: $(VENV)/.installed
	$(BIN)/segkit run

test: $(VENV)/.installed-dev
	rm -rf reports/interactive
	$(BIN)/lint-imports --no-cache
	$(PY) tests/browser_setup.py
	$(PY) tests/spark_setup.py
	$(PY) -m pytest -n 3 --dist loadfile --nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval/sanitize.cfg --doctest-modules --durations=15 $(PYTEST_ARGS) tests segkit

# JupyterLab on notebooks/ (segkit/widgets/lab.py): sets up the git filter that keeps notebook outputs
# out of git, and a save hook that keeps explorers readable after a save, shutdown and reopen.
lab: $(VENV)/.installed
	$(PY) -m segkit.widgets.lab

bench: $(VENV)/.installed-dev
	$(PY) -m segkit.bench

bench-smoke: $(VENV)/.installed-dev
	$(PY) -m segkit.bench --smoke

# Re-execute the notebooks and store them (with outputs) as the nbval regression copies.
nbval-refresh: $(VENV)/.installed-dev
	$(PY) -m segkit.report refresh-nbval

# Move to the newest releases pyproject.toml allows and record them (then run make test).
constraints: $(VENV)/.installed-dev
	$(PY) -m pip install --quiet --upgrade -e ".[dev]"
	{ sed -n '/^#/p' constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v '^#'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	@touch $(VENV)/.installed $(VENV)/.installed-dev

clean:
	rm -rf $(VENV) reports/interactive .pytest_cache
