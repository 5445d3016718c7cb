# The two commands of the README:
#   make run    install what is needed and start the server (SQLite under instance/)
#   make test   install what is needed and run the suite on SQLite, then MariaDB
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=
# The pages' JavaScript dependency (socket.io-client), pinned by package-lock.json.
NODE_STAMP := node_modules/.installed

.PHONY: run test test-sqlite test-mysql install install-dev node browser screenshots cluster clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-client.txt requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# `npm ci` installs exactly the lock file, and starts by emptying node_modules:
# the stamp inside it goes too, so a half-done install is redone next time.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

node: $(NODE_STAMP)

# Debian packages the tests drive: chromium (pages), nginx (the cluster test).
browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	command -v nginx >/dev/null || test -x /usr/sbin/nginx || \
		(apt-get update && apt-get install -y nginx-light)

install: $(VENV)/.installed $(NODE_STAMP)
install-dev: $(VENV)/.installed-dev $(NODE_STAMP) browser

run: install
	$(PY) run.py

# Both databases at once: most of a test is waiting on a server, so two passes
# share the two cores well. The MariaDB pass's output follows the SQLite one's.
test: install-dev
	@mkdir -p test-artifacts
	@QC_TEST_DB=mysql $(PY) -m pytest -p no:cacheprovider --basetemp=test-artifacts/tmp-mysql \
		$(PYTEST_ARGS) > test-artifacts/pytest-mysql.log 2>&1 & mysql_pid=$$!; \
	echo "== SQLite pass (the MariaDB pass runs alongside: test-artifacts/pytest-mysql.log)"; \
	QC_TEST_DB=sqlite $(PY) -m pytest --basetemp=test-artifacts/tmp-sqlite $(PYTEST_ARGS); \
	sqlite=$$?; wait $$mysql_pid; mysql=$$?; \
	echo "== SQLite pass exit $$sqlite; MariaDB pass exit $$mysql, its output:"; \
	cat test-artifacts/pytest-mysql.log; \
	test $$sqlite -eq 0 && test $$mysql -eq 0

test-sqlite: install-dev
	QC_TEST_DB=sqlite $(PY) -m pytest $(PYTEST_ARGS)

test-mysql: install-dev
	QC_TEST_DB=mysql $(PY) -m pytest $(PYTEST_ARGS)

# Refresh docs/screenshots/ from the browser tests (test-artifacts/ always has the latest).
screenshots: install-dev
	QC_DOCS_SCREENSHOTS=1 $(PY) -m pytest tests/test_pages_browser.py tests/test_queues_pages.py \
		tests/test_reviewer_forms_pages.py tests/test_quality_pages.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache node_modules test-artifacts

# N qc_live processes behind nginx on loopback, sharing MariaDB and Redis.
N ?= 2
cluster: install
	command -v nginx >/dev/null || (apt-get update && apt-get install -y nginx-light)
	$(PY) scripts/cluster.py --processes $(N)

# Benchmarks (bench/, results in docs/benchmarks.md), at modest sizes: about 15
# minutes. The full-size runs are one command each, see docs/benchmarks.md.
.PHONY: bench
bench: $(VENV)/.installed-dev
	$(PY) bench/load.py latency --seconds 5
	$(PY) bench/load.py sockets --sockets 2000
	$(PY) bench/load.py intake --tasks 20000
	$(PY) bench/hotspots.py --seconds 10
	$(PY) bench/mariadb_floor.py --n 500
