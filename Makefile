# The two commands a newcomer needs: `make run` and `make test`.
# Everything else here is what those two depend on.

VENV      := .venv
PY        := $(VENV)/bin/python
FERRETDB  := var/bin/ferretdb
# The SMTP server of the mail transport tests (STARTTLS and AUTH required), as docker-compose runs it.
MAILPIT   := var/bin/mailpit
# Python 3.13: on PATH, or through pyenv when the shim needs a version picked.
PYTHON313 ?= $(shell command -v python3.13 >/dev/null 2>&1 && python3.13 -c 'import sys' 2>/dev/null && echo python3.13 \
               || (v=$$(pyenv versions --bare 2>/dev/null | grep '^3\.13' | tail -n1); [ -n "$$v" ] && echo "$$(pyenv root)/versions/$$v/bin/python3.13"))

# The preflight runs before anything is installed: the venv's python once there is one.
PREFLIGHT = $(or $(wildcard $(PY)),$(PYTHON313),python3) scripts/preflight.py

.PHONY: run test lint format venv ferretdb mailpit chromium bench bench-full screenshots clean preflight-run preflight-test

run: preflight-run $(VENV)/.installed $(FERRETDB)  ## start the whole stack in the foreground (Ctrl-C stops all)
	$(PY) -m devstack

test: preflight-test $(VENV)/.installed-test $(FERRETDB) $(MAILPIT)  ## lint, then the whole test suite against real servers
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest $(PYTEST_ARGS)

# Settings in pyproject.toml: ruff (lint and format) on everything, mypy on the domain, the mail adapter and the tasks.
lint: $(VENV)/.installed-test  ## ruff (lint and format check) and mypy, as `make test` runs them first
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(VENV)/.installed-test  ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# In the first second: say what the machine lacks and how to install it, then stop.
preflight-run preflight-test: preflight-%:
	@$(PREFLIGHT) $* --python "$(PYTHON313)"

screenshots: $(VENV)/.installed-test $(FERRETDB)  ## refresh docs/screenshots from the browser tests
	SCREENSHOT_DIR=docs/screenshots $(PY) -m pytest tests/web/test_browser.py tests/monitoring/test_status_browser.py \
	  tests/recurring/test_schedule_browser.py \
	  tests/api/test_openapi.py::test_the_docs_page_shows_every_operation_in_chromium_under_our_csp

bench: $(VENV)/.installed-test $(FERRETDB)  ## every benchmark (reads, delivery, status, scheduling) at quick sizes: JSON, and bench/results/latest.json
	$(PY) -m bench

bench-full: $(VENV)/.installed-test $(FERRETDB)  ## the same at the full sizes (100,000 stored jobs; one to two hours)
	$(PY) -m bench --full

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	@test -n "$(PYTHON313)" || { echo "Python 3.13 not found (python3.13 or pyenv)"; exit 1; }
	test -x $(PY) || $(PYTHON313) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(PY) -m pip install -q -r requirements-test.txt
	touch $@

ferretdb: $(FERRETDB)

mailpit: $(MAILPIT)

$(MAILPIT): scripts/build-mailpit.sh
	scripts/build-mailpit.sh $@

chromium: $(VENV)/.installed-test  ## Playwright's own Chromium, for machines without a usable one
	$(PY) -m playwright install chromium

$(FERRETDB): scripts/build-ferretdb.sh $(wildcard scripts/ferretdb-patches/*.patch)
	scripts/build-ferretdb.sh $@

clean:
	rm -rf $(VENV) var
