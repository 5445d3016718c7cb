# The two commands of the README:
#   make run    install what is needed and start the server (SQLite under instance/)
#   make test   install what is needed and run the suite on SQLite, then MariaDB
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run test test-sqlite test-mysql install install-dev clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(PY) run.py

test: install-dev
	QC_TEST_DB=sqlite $(PY) -m pytest $(PYTEST_ARGS)
	QC_TEST_DB=mysql $(PY) -m pytest $(PYTEST_ARGS)

test-sqlite: install-dev
	QC_TEST_DB=sqlite $(PY) -m pytest $(PYTEST_ARGS)

test-mysql: install-dev
	QC_TEST_DB=mysql $(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
