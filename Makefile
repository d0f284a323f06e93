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

PROFILE ?= $(or $(COURSE_PROFILE),cpu)
# Test workers: the exercise tests are single-threaded (the grader's measured runs use one thread).
TEST_WORKERS ?= 2

.PHONY: help setup book test test-unit test-notebooks site-test colab-check exercises grade grade-all benchmark lock clean

help:
	@echo "make book        set up, execute changed notebooks (cpu profile, timing table) and build _build/html"
	@echo "make test        set up, then every test under tests/ (library, exercises and grader, book structure)"
	@echo "make test-notebooks  run every chapter notebook in the quick profile (45 s budget each)"
	@echo "make site-test   open every page of the built site in headless Chromium and check it"
	@echo "make colab-check install the built package into a fresh Python 3.12 venv and run every notebook there"
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

# 1. run the notebooks that changed (tools/execute.py: budgets, cache); 2. build the pages from the cache.
book: $(STAMP)
	$(BIN)/python tools/execute.py --profile $(PROFILE)
	COURSE_PROFILE=$(PROFILE) $(BIN)/jupyter-book build . $(BOOKFLAGS)
	@$(BIN)/python tools/execute.py --report
	@echo "Open _build/html/index.html in a browser."

# Chapter notebooks run (and their check cells pass) in `make book`; they are not run a second time here.
test: $(STAMP)
	$(BIN)/python -m pytest tests -q -n $(TEST_WORKERS) --dist loadgroup $(PYTESTFLAGS)

test-unit: test

test-notebooks: $(STAMP)
	$(BIN)/python tools/execute.py --profile quick --no-cache

# The released package as a student gets it: sdist -> fresh Python 3.12 venv, declared dependencies only,
# every chapter notebook and exercise solution run (quick profile) outside the repository.
colab-check: $(STAMP)
	$(BIN)/python tools/colab_check.py $(if $(COLAB_PYTHON),--python $(COLAB_PYTHON))

site-test: $(STAMP)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { echo "installing Debian's chromium for the browser test"; \
	    (apt-get install -y -q chromium >/dev/null || sudo apt-get install -y -q chromium >/dev/null) || \
	    { echo "could not install chromium: apt-get install chromium, then rerun"; exit 1; }; }
	$(BIN)/python tools/site_test.py _build/html

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
	rm -rf _build  # the notebook cache (_build/.jupyter_cache) too
