# The fashion product image study. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := all

VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
QUICK   ?= 0
# Extra papermill parameters, e.g. make notebooks PARAMS="TARGET=articleType IMAGE_SIZE=64"
PARAMS  ?=
# Only some notebooks, e.g. make notebooks ONLY="03 04"
ONLY    ?=
WORKERS ?= 2
# The whole study's time budget in minutes (2 CPU cores: 60); it scales notebook 04's heavy steps
BUDGET_MINUTES ?= 60
PYTEST_ARGS ?=
# pytest-xdist workers for make test / test-fast (auto: one per core; 0: one process)
TEST_WORKERS ?= auto
# Benchmark sections and options, e.g. make bench BENCH="training --minutes 30 60" (default: the fast ones)
BENCH   ?=
# TensorFlow's build: cpu (tensorflow-cpu) or gpu (tensorflow[and-cuda]); switch on a fresh .venv
TF      ?= cpu
ifeq ($(filter cpu gpu,$(TF)),)
$(error TF must be cpu or gpu. Received: TF=$(TF))
endif

.PHONY: all help system setup data study notebooks report screenshots test test-fast lab explore bench tune-distributed clean

## The whole study: set up, prepare the data, run every notebook for both targets, write the report
all: study report

## Print this help
help:
	@awk '/^## /{doc=substr($$0,4); next} /^[a-zA-Z_-]+:/{if(doc){split($$1,t,":"); printf "  %-18s %s\n", t[1], doc}; doc=""}' $(MAKEFILE_LIST)

## Install the system packages the study lacks (as root on Debian/Ubuntu; else prints the command)
system:
	@bash scripts/system-packages.sh study

## The whole set-up: system packages, then .venv with the package and the notebook stack (idempotent; TF=gpu: CUDA build)
setup: $(STAMP)

$(STAMP): pyproject.toml | system
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,$(TF)]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipykernel)" > /dev/null
	touch $(STAMP)

## Prepare the default data set (Fashion-MNIST in the Kaggle layout) under data/raw
data: setup
	$(PY) -m fashion_utils.catalog.data prepare-fashion-mnist

## Execute the whole study (fashion_utils/tools/budget.py) within BUDGET_MINUTES, with a timing table
study: data
	$(PY) -m fashion_utils.tools.runner --study --budget-minutes $(BUDGET_MINUTES) $(if $(filter 1 true yes,$(QUICK)),--quick) $(foreach p,$(PARAMS),-p '$(p)')

## Execute notebooks/NN_*.ipynb in order with papermill into reports/<catalog>/executed (QUICK=1, PARAMS=..., ONLY=...)
notebooks: data
	$(PY) -m fashion_utils.tools.runner $(if $(filter 1 true yes,$(QUICK)),--quick) $(if $(ONLY),--only $(ONLY)) $(foreach p,$(PARAMS),-p '$(p)')

## Rewrite the README's generated results from the metrics files (fashion_utils/tools/report.py)
report: setup
	$(PY) -m fashion_utils.tools.report

## Run the tests, including the quick papermill run of every notebook and the browser test
test: data
	@bash scripts/system-packages.sh test
	$(PY) -m pytest -ra -n $(TEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

## Refresh the explorer screenshots in reports/fashion-mnist/figures/ (the browser test; make test keeps them)
screenshots: data
	FASHION_SCREENSHOTS=$(CURDIR)/reports/fashion-mnist/figures $(PY) -m pytest -ra -m browser tests/test_browser.py

## Run the unit tests only (no notebooks, no browser)
test-fast: setup
	$(PY) -m pytest -ra -n $(TEST_WORKERS) --dist loadscope -m "not notebooks and not browser" $(PYTEST_ARGS)

## Open JupyterLab on the notebooks
lab: data
	$(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

## Open the recommendation explorer as a Voila dashboard
explore: data
	$(VENV)/bin/voila notebooks/05_recommendation.ipynb

## Speed and memory benchmarks (fashion_utils/tools/bench/) into reports/benchmarks.json (BENCH="training": budgets)
bench: data
	$(PY) -m fashion_utils.tools.bench $(BENCH)

## Distributed KerasTuner search: one chief and WORKERS workers on localhost
tune-distributed: data
	$(PY) -m fashion_utils.tools.distributed distributed --workers $(WORKERS)

## Remove derived data, models and executed notebooks (keeps raw data and .venv)
clean:
	rm -rf data/interim data/processed models reports/quick reports/*/executed/*.html
