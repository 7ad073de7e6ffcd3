# The two quick-start commands: `make run` (the main job) and `make test` (everything CI checks).
# Each creates .venv/ when missing and installs the pinned stack into it.
SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTHON ?= python3
OUT   ?= runs/main

.PHONY: run test setup check-export check-clean test-notebooks test-pytest lab docs

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (crisscross)" >/dev/null
	@touch $(STAMP)

# The main job: pretraining on the embedded default data set, run by papermill.
run: $(STAMP)
	@mkdir -p $(OUT)
	$(BIN)/papermill nbs/pretrain.ipynb $(OUT)/pretrain.ipynb --log-output -p epochs 0 -p max_steps 0 -p out_dir $(abspath $(OUT)) $(PARAMS)
	@echo "Results in $(OUT)/: metrics.json, views.png, loss.png, checkpoints/, backbones.pt, the executed notebook pretrain.ipynb"

# Everything CI checks, in order.
test: $(STAMP) check-export check-clean test-notebooks test-pytest

check-export:
	$(BIN)/nbdev-export
	@git diff --exit-code --stat -- crisscross/ || { echo "crisscross/ differs from what nbs/ exports: edit the notebook, run nbdev-export, commit."; exit 1; }
	@untracked=$$(git ls-files --others --exclude-standard -- crisscross/); \
	  if [ -n "$$untracked" ]; then echo "Untracked exported files (commit them): $$untracked"; exit 1; fi

check-clean:
	$(BIN)/nbdev-clean
	@git diff --exit-code --stat -- nbs/ || { echo "nbdev-clean changed notebooks: commit the cleaned notebooks."; exit 1; }

test-notebooks:
	$(BIN)/nbdev_test --timing

test-pytest:
	$(BIN)/pytest tests/

# The documentation site, built from the notebooks (executed) into _docs/: open _docs/index.html.
# `make docs DOCS_ARGS=--no-execute` builds in about a minute, without outputs; `DOCS_ARGS=--strict` fails on a broken page.
docs: $(STAMP)
	$(BIN)/python -m crisscross.docs $(DOCS_ARGS)

# Open the notebooks in JupyterLab with the project's environment as the kernel.
lab: $(STAMP)
	$(BIN)/jupyter lab nbs/
