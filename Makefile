# The README's two commands. Each creates .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip

.PHONY: demo test lint bench train clean

$(VENV)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[cpu]"
	touch $@

# torch==2.13.0 is pinned in the train extra: pip takes the CPU wheel on disk.
$(VENV)/.dev: $(VENV)/.runtime
	$(PIP) install --quiet -e ".[cpu,train,dev]"
	touch $@

demo: $(VENV)/.runtime
	$(VENV)/bin/modstream demo

test: $(VENV)/.dev
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check stream classifiers tests scripts
	$(VENV)/bin/mypy stream classifiers scripts

bench: $(VENV)/.runtime
	$(VENV)/bin/modstream bench

train: $(VENV)/.dev
	$(VENV)/bin/modstream train --config classifiers/configs/default.yaml

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
