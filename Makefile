# The two commands a new user needs:
#   make run    set up .venv and start the app (streamlit run app.py)
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.deps-installed

.PHONY: run test setup lint bench

setup: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m streamlit run app.py

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) scripts/benchmark.py

lint: $(STAMP)
	$(PY) -m ruff check rerank_core ui views app.py tests scripts
	$(PY) -m mypy
