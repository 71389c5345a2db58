# dgm course kit. Two commands matter: `make lab` (open the labs) and `make test` (the test suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# nbgrader shells out to alembic: the venv's bin/ must come first on PATH.
export PATH := $(abspath $(VENV))/bin:$(PATH)
WORKERS ?= 2

.PHONY: help venv lab test release check-release bench grade clean

help:
	@echo "make lab       create .venv if missing, install everything, open JupyterLab on labs/"
	@echo "make test      run the whole test suite (offline, fast mode, $(WORKERS) workers)"
	@echo "make release   regenerate labs/ and solutions/ from course/source"
	@echo "make grade     batch-autograde submissions: make grade ARGS='01_autoencoder submissions.zip [-j 4]'"
	@echo "make bench     print the benchmark figures"

$(VENV)/.installed: helpers/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e "helpers[dev]"
	touch $@

venv: $(VENV)/.installed

lab: venv
	$(VENV)/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)/labs" $(if $(filter 0,$(shell id -u)),--allow-root)

test: venv
	DGM_FAST=1 $(PY) -m pytest -n $(WORKERS) --dist loadfile tests

release: venv
	$(PY) tools/release.py

check-release: venv
	$(PY) tools/release.py --check

bench: venv
	@for f in bench/bench_*.py; do echo "== $$f"; DGM_FAST=1 $(PY) $$f || exit 1; done

grade: venv
	$(VENV)/bin/dgm-grade $(ARGS)

clean:
	rm -rf course/release course/submitted course/autograded course/feedback course/gradebook.db
