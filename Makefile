# Two commands for a fresh clone: `make run` (portal with demo data) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1:8000
# Tests run against real PostgreSQL and Redis (see README); these are the local defaults.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/portal
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15

.PHONY: install run test worker bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py seed_demo --size small
	$(PY) manage.py runserver $(HOST)

test: install
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" \
	CELERY_BROKER_URL="$${CELERY_BROKER_URL:-$(TEST_BROKER_URL)}" \
	$(PY) -m pytest $(PYTEST_ARGS)

worker: install
	$(VENV)/bin/celery -A config worker --loglevel=info --concurrency=2

bench: install
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)_bench}" $(PY) bench/import_bench.py
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)_bench}" $(PY) bench/settle_bench.py

clean:
	rm -rf $(VENV) db.sqlite3 media
