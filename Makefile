# Two commands on a fresh machine: `make book` and `make test`. Everything runs offline after set-up.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0
# Each notebook kernel gets the 2 cores; no BLAS oversubscription.
export OMP_NUM_THREADS ?= 2

.PHONY: help setup book test test-unit test-notebooks exercises grade grade-all benchmark lock clean

help:
	@echo "make book        set up, execute every notebook (cpu profile) and build the website into _build/html"
	@echo "make test        set up, then unit tests and nbval over every chapter notebook (quick profile)"
	@echo "make exercises   generate student notebooks and autograder bundles from exercises/source"
	@echo "make benchmark   print the speed table (ours vs diffusers)"

$(STAMP): requirements/lock.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required (set PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements/lock.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

setup: $(STAMP)

book: $(STAMP)
	COURSE_PROFILE=$${COURSE_PROFILE:-cpu} $(BIN)/jupyter-book build . $(BOOKFLAGS)
	@echo "Open _build/html/index.html in a browser."

test: $(STAMP)
	COURSE_PROFILE=quick $(BIN)/python -m pytest tests chapters --nbval-lax -p no:randomly -q $(PYTESTFLAGS)

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests -q

test-notebooks: $(STAMP)
	COURSE_PROFILE=quick $(BIN)/python -m pytest chapters --nbval-lax -q

exercises: $(STAMP)
	$(BIN)/python exercises/tools.py build

grade: $(STAMP)
	@test -n "$(NB)" || { echo "usage: make grade NB=path/to/notebook.ipynb [SET=ddpm]"; exit 2; }
	$(BIN)/python exercises/tools.py grade "$(NB)" $(if $(SET),--set $(SET))

grade-all: $(STAMP)
	@test -n "$(DIR)" || { echo "usage: make grade-all DIR=submissions/ [SET=ddpm] [CSV=scores.csv]"; exit 2; }
	$(BIN)/python exercises/tools.py grade-all "$(DIR)" $(if $(SET),--set $(SET)) $(if $(CSV),--csv $(CSV))

benchmark: $(STAMP)
	$(BIN)/python benchmarks/run.py

lock:
	$(BIN)/pip freeze --exclude-editable | grep -v '^course.lib' > requirements/lock.txt.new
	(echo "# Exact versions that install together on Python 3.11 (x86_64). Regenerate: make lock"; \
	 cat requirements/lock.txt.new) > requirements/lock.txt && rm requirements/lock.txt.new

clean:
	rm -rf _build
