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
# Test workers, each with one thread: most of the time goes to grading runs, whose processes start, import and wait
# (3 workers on 2 cores: 251 s against 323 s with 2 workers of 2 threads each, measured on the course's machine).
TEST_WORKERS ?= 3

.PHONY: help setup book notebooks site test test-unit test-grading test-notebooks site-test colab-venv colab-check \
        exercises grade grade-all benchmark lock clean

help:
	@echo "make book        set up, run the notebooks that changed (cpu profile, timing table) and build _build/html"
	@echo "                 CHAPTERS=05_guidance: run and time only those chapters (what a page's author runs)"
	@echo "make test        set up, then every test under tests/ (library, exercises in quick grading, structure; <= 5 min)"
	@echo "make test-grading  grade every exercise set's cases at full size (whoever changes a set runs it)"
	@echo "make test-notebooks  validate the chapter notebooks with nbval (pytest --nbval-lax), quick profile"
	@echo "make site-test   open every page of the built site in headless Chromium and check it"
	@echo "make colab-check install the built package into a fresh Python 3.12 venv and run every notebook there"
	@echo "make exercises   generate student notebooks and autograder bundles from exercises/source"
	@echo "make prose-numbers  list numbers a page's prose quotes that no cell of the page prints (after make book)"
	@echo "make benchmark   print the speed table (ours vs diffusers)"

$(STAMP): requirements/lock.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required (set PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements/lock.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

setup: $(STAMP)

# `make book` = `make notebooks` (run the notebooks that changed: tools/execute.py, timing table, cache) + `make site`
# (build the pages from the cache). Time is reported, never a reason to fail; a failing cell or check cell fails.
# CHAPTERS=05_guidance (or 05) runs only those chapters; KERNEL=name runs them in another installed kernel.
CHAPTERS ?=
KERNEL ?=
BOOK_JOBS ?= 1
book: $(STAMP)
	@$(MAKE) --no-print-directory notebooks
	@$(MAKE) --no-print-directory site
	@$(BIN)/python tools/execute.py --report

notebooks: $(STAMP)
	$(if $(KERNEL),JUPYTER_PATH=$(CURDIR)/_build/colab-venv/share/jupyter) \
	  $(BIN)/python tools/execute.py --profile $(PROFILE) --jobs $(BOOK_JOBS) $(if $(KERNEL),--kernel $(KERNEL)) \
	  $(if $(CHAPTERS),--chapters $(CHAPTERS) --partial-config)

site: $(STAMP)
	COURSE_PROFILE=$(PROFILE) $(BIN)/jupyter-book build . $(if $(CHAPTERS),--config _build/_config.partial.yml) $(BOOKFLAGS)
	@echo "Open _build/html/index.html in a browser."

# Chapter notebooks run (and their check cells pass) in `make book` / CI's quick book; they are not run here.
# Exercise grading runs here in quick mode (COURSE_GRADING_QUICK=1: measured questions run their real code at a tiny
# size); `make test-grading` grades every set's cases at full size.
test: $(STAMP)
	COURSE_GRADING_QUICK=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests -q -n $(TEST_WORKERS) --dist loadgroup --durations=15 \
	  $(PYTESTFLAGS)

test-unit: test

test-grading: $(STAMP)
	COURSE_GRADING_QUICK=0 OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests/exercises -q -n $(TEST_WORKERS) --dist loadgroup -m grading \
	  --durations=0 $(PYTESTFLAGS)

# nbval runs each notebook cell by cell in a fresh kernel; a cell that raises (a check cell's assert included) fails.
test-notebooks: $(STAMP)
	COURSE_PROFILE=quick $(BIN)/python -m pytest --nbval-lax -q -p no:xdist \
	  $(if $(CHAPTERS),$(foreach c,$(CHAPTERS),$(wildcard chapters/$(c)*/*.ipynb)),chapters) $(PYTESTFLAGS)

# The released package as a student gets it: sdist -> fresh Python 3.12 venv, declared dependencies only,
# every chapter notebook and exercise solution run (quick profile) outside the repository.
colab-check: $(STAMP)
	$(BIN)/python tools/colab_check.py $(if $(COLAB_PYTHON),--python $(COLAB_PYTHON)) $(COLABFLAGS)

# Only the fresh venv and its kernel `colab-check` (CI then runs the book's notebooks in it: KERNEL=colab-check).
colab-venv: $(STAMP)
	$(BIN)/python tools/colab_check.py --venv-only $(if $(COLAB_PYTHON),--python $(COLAB_PYTHON))

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

# Issue 26, item 1: a number the prose quotes from the page's own run is printed by a cell of that page. Reads the
# built site (cpu profile after `make book`); lists, never fails: papers' numbers with their citation are fine.
.PHONY: prose-numbers
prose-numbers: $(STAMP)
	$(BIN)/python tools/prose_numbers.py $(if $(CHAPTERS),--chapters $(CHAPTERS))
