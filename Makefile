# minigrad: one command for each thing a user does. Every target is idempotent.
#   make test              create .venv if missing, install minigrad with its test extras, run pytest
#   make train [DATA=path] train the default small GPT (Tiny Shakespeare, or your own text)
#   make bench             run the benchmarks (kernel ones need a GPU)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test train bench clean venv

venv: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

train: $(STAMP)
	$(PY) train.py $(if $(DATA),--data=$(DATA),)

bench: $(STAMP)
	$(PY) -m benchmarks.run_all

clean:
	rm -rf $(VENV) build *.egg-info
