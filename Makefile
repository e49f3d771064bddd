# One entry point for people and CI. `make test` is the README's test command; `make demo` its main job.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
export PYTHONHASHSEED := 0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install export clean-nbs check-sync test test-nbs test-py run-nbs run-slow-nbs lint format doctor demo stage1 stage2 hpo-report export-best predict docs bench

install: $(STAMP)   ## create .venv and install the pinned, tested versions
$(STAMP): settings.ini setup.py requirements/constraints.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -U "pip>=24" "setuptools>=70" wheel
	$(BIN)/pip install -q --disable-pip-version-check -c requirements/constraints.txt -e ".[dev]"
	@touch $(STAMP)

export: $(STAMP)    ## write the library from the notebooks
	$(BIN)/nbdev_export

clean-nbs: $(STAMP) ## strip notebook metadata the way CI expects
	$(BIN)/nbdev_clean

check-sync: $(STAMP) ## fail if nbdev_export or nbdev_clean would change a tracked file
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean
	@out=$$(git status --porcelain -- nbs dataaug_multi_both); \
	if [ -n "$$out" ]; then echo "notebooks and library disagree (edit nbs/, then make export clean-nbs):"; echo "$$out"; exit 1; fi
	$(BIN)/python tools/build_readme.py --check

test-nbs: $(STAMP)  ## run every notebook (cells flagged slow are skipped)
	$(BIN)/nbdev_test --n_workers 2 --timing

test-py: $(STAMP)   ## the pytest suite in tests/
	$(BIN)/python -m pytest -q tests

test: check-sync test-nbs test-py ## the README's test command

run-nbs: $(STAMP)   ## run every notebook in a real Jupyter kernel, slow cells included (as JupyterLab would)
	$(BIN)/python tools/run_notebooks.py

run-slow-nbs: $(STAMP) ## run, in a real Jupyter kernel, the notebooks that have slow cells (`make test` skips those cells)
	$(BIN)/python tools/run_notebooks.py --slow-only

lint: $(STAMP)      ## ruff and mypy over the library
	$(BIN)/ruff check dataaug_multi_both tests bench
	$(BIN)/mypy dataaug_multi_both

format: $(STAMP)    ## clean notebooks and format the hand-written Python (tests, bench)
	$(BIN)/nbdev_clean
	$(BIN)/ruff format tests bench

doctor: $(STAMP)    ## what this machine can do: Python, torch, CUDA, bf16/fp16, threads, versions
	$(BIN)/python -m dataaug_multi_both.cli.doctor $(ARGS)

demo: $(STAMP)      ## the main job on the embedded demo: Stage 1, Stage 2, report, export
	$(BIN)/python -m dataaug_multi_both.cli.hpo demo $(ARGS)

stage1: $(STAMP)
	$(BIN)/python -m dataaug_multi_both.cli.hpo stage1 $(ARGS)

stage2: $(STAMP)
	$(BIN)/python -m dataaug_multi_both.cli.hpo stage2 $(ARGS)

hpo-report: $(STAMP)
	$(BIN)/python -m dataaug_multi_both.cli.hpo report $(ARGS)

export-best: $(STAMP)
	$(BIN)/python -m dataaug_multi_both.cli.hpo export $(ARGS)

predict: $(STAMP)
	$(BIN)/python -m dataaug_multi_both.cli.predict $(ARGS)

docs: $(STAMP)      ## render the docs site from the notebooks into _docs/, offline
	$(BIN)/python tools/build_docs.py

bench: $(STAMP)     ## trainer vs bare PyTorch loop; trials/hour with 1 and 2 workers and disk use after 100 trials
	$(BIN)/python bench/trainer_throughput.py
	$(BIN)/python bench/hpo_throughput.py

.PHONY: readme
readme: $(STAMP)    ## write README.md from nbs/index.ipynb (no Quarto needed)
	$(BIN)/python tools/build_readme.py
