# dgm course kit. Two commands matter: `make lab` (open the labs) and `make test` (the test suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# nbgrader shells out to alembic: the venv's bin/ must come first on PATH.
export PATH := $(abspath $(VENV))/bin:$(PATH)
WORKERS ?= 2
# make lab / make formgrader options (see `make help`)
PORT ?= 8888
NO_BROWSER ?=
LAB_ARGS ?=
JUPYTER_FLAGS = --ServerApp.port=$(PORT) $(if $(NO_BROWSER),--no-browser) $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

.PHONY: help venv venv-browser workspace lab formgrader test test-browser release check-release bench grade clean

help:
	@echo "make lab        make workspace, then JupyterLab (student server) on workspace/"
	@echo "                options: PORT=8888  NO_BROWSER=1 (print the URL only)  LAB_ARGS='--ServerApp.ip=0.0.0.0 ...'"
	@echo "make workspace  copy new labs from labs/ into workspace/ (never overwrites your files;"
	@echo "                a lab that changed upstream arrives as <lab>.updated.ipynb beside yours)"
	@echo "make formgrader JupyterLab on course/ for the instructor, with nbgrader's formgrader (same options)"
	@echo "make test       run the whole test suite (offline, fast mode, $(WORKERS) workers)"
	@echo "make test-browser  real-browser tests: JupyterLab driven by headless Chromium (apt: chromium chromium-driver)"
	@echo "make release   regenerate labs/ and solutions/ from course/source"
	@echo "make grade     batch-autograde submissions: make grade ARGS='01_autoencoder submissions.zip [-j 4]'"
	@echo "make bench     print the benchmark figures"

$(VENV)/.installed: helpers/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# setuptools prints an "Editable installation." notice box on every editable install: not for students
	PYTHONWARNINGS="ignore:Editable installation:UserWarning" $(PY) -m pip install --quiet -e "helpers[dev]"
	@# the distribution was called `dgm` before it became `dgm-course`: drop a leftover install
	@if $(PY) -m pip show --quiet dgm >/dev/null 2>&1; then $(PY) -m pip uninstall --quiet --yes dgm; fi
	touch $@

$(VENV)/.installed-browser: $(VENV)/.installed
	PYTHONWARNINGS="ignore:Editable installation:UserWarning" $(PY) -m pip install --quiet -e "helpers[dev,browser]"
	touch $@

venv: $(VENV)/.installed

venv-browser: $(VENV)/.installed-browser

workspace: venv
	$(PY) tools/workspace.py

# The student's server: config/student switches nbgrader's menus and server extensions off
# (they need an exchange); nbgrader stays installed for `make formgrader`.
lab: workspace
	JUPYTER_CONFIG_PATH="$(CURDIR)/config/student" $(VENV)/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)/workspace" $(JUPYTER_FLAGS)

# The instructor's server: the nbgrader course root, formgrader included.
formgrader: venv
	cd course && $(abspath $(VENV))/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)/course" --ServerApp.default_url=/formgrader $(JUPYTER_FLAGS)

# tests/browser needs Chromium and a running JupyterLab: `make test-browser` only.
test: venv
	DGM_FAST=1 $(PY) -m pytest -n $(WORKERS) --dist loadfile --ignore=tests/browser tests

test-browser: venv-browser
	DGM_FAST=1 DGM_BROWSER_TESTS=1 $(PY) -m pytest -p no:xdist -p no:cacheprovider -v tests/browser

release: venv
	$(PY) tools/release.py

check-release: venv
	$(PY) tools/release.py --check

bench: venv
	@for f in bench/bench_*.py; do echo "== $$f"; DGM_FAST=1 $(PY) $$f || exit 1; done

# dgm-grade at scale: notebooks/s with 1 and 2 local Dask workers, a TCP scheduler + 2 workers, Dask vs
# the old pool, the parent's peak memory for 50 and 200 submissions, a projection for 25,000 notebooks.
.PHONY: bench-grade
bench-grade: venv
	DGM_FAST=1 $(PY) bench/bench_grade.py --scale

grade: venv
	$(VENV)/bin/dgm-grade $(ARGS)

clean:
	rm -rf course/release course/submitted course/autograded course/feedback course/gradebook.db
