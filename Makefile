# minigrad: one command for each thing a user does. Every target can be run again safely.
#   make test                    create .venv if missing, install minigrad with its test extras, run pytest
#   make train [DATA=path] [ARGS="--max_iters=500 ..."]
#                                train the default small GPT (Tiny Shakespeare, or your own text); needs
#                                only numpy, regex and matplotlib (the [train] extra). A second run into
#                                the same out_dir needs ARGS="--resume" (continue) or "--overwrite=true".
#   make bench                   run the benchmarks (kernel ones need a GPU)
# To run the scripts yourself: .venv/bin/python train.py --help (or `source .venv/bin/activate`).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP_TEST  := $(VENV)/.installed-test
STAMP_TRAIN := $(VENV)/.installed-train

.PHONY: test train bench clean venv

venv: $(STAMP_TEST)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP_TEST): setup.py | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP_TEST)

$(STAMP_TRAIN): setup.py | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[train]"
	touch $(STAMP_TRAIN)

test: $(STAMP_TEST)
	$(PY) -m pytest -q

train: $(STAMP_TRAIN)
	$(PY) train.py $(if $(DATA),--data="$(DATA)",) $(ARGS)

bench: $(STAMP_TEST)
	$(PY) -m benchmarks.run_all

clean:
	rm -rf $(VENV) build *.egg-info
