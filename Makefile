# Gateway Portal — the two set-up commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000
KUBESIM_PORT ?= 18443
OIDC_PORT ?= 9400
OIDC_MODULES := tests/oidc/node_modules/.package-lock.json

.PHONY: run run-sso test lint bench fuzz services browser oidc venv clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

venv: $(VENV)/.installed

.env:
	@echo "Writing .env with random development keys (DEBUG=false, SQLite, in-process Celery)."
	@{ echo "DEBUG=false"; \
	   echo "SECRET_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')"; \
	   echo "LOG_FORMAT=plain"; \
	   echo "FIELD_ENCRYPTION_KEYS=$$($(PYTHON) -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())')"; \
	 } > .env

# The demo's kubesim cluster speaks plain HTTP, which the portal refuses by default.
run: export ALLOW_INSECURE_CLUSTERS := true
run: venv .env
	@mkdir -p var
	$(PY) manage.py migrate --noinput
	@trap 'kill $$(jobs -p) 2>/dev/null' EXIT; \
	$(PY) -m kubesim --port $(KUBESIM_PORT) --token demo-cluster-token --demo > var/kubesim.log 2>&1 & \
	for _ in $$(seq 1 50); do grep -q listening var/kubesim.log 2>/dev/null && break; sleep 0.2; done; \
	$(PY) manage.py demo_setup --kubesim-port $(KUBESIM_PORT) --portal-url http://$(HOST):$(PORT) $(DEMO_ARGS) && \
	$(PY) manage.py runserver --noreload $(HOST):$(PORT)

# The local OpenID provider (npm oidc-provider, pinned in tests/oidc): installed again only when the lockfile changes.
$(OIDC_MODULES): tests/oidc/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "Installing Debian's nodejs and npm for the identity tests..."; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq && \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
	npm ci --prefix tests/oidc --no-audit --no-fund --loglevel=error >/dev/null
	@touch $@

oidc: $(OIDC_MODULES)

# `make run` signed in through a local identity provider (docs/identity.md): alice is in payments-devs (the demo
# team's group), bob in platform-engineers. Any password works on the provider's login page.
run-sso: venv .env oidc
	@mkdir -p var
	@trap 'kill $$(jobs -p) 2>/dev/null' EXIT; \
	PORT=$(OIDC_PORT) node tests/oidc/provider.mjs > var/oidc-provider.log 2>&1 & \
	for _ in $$(seq 1 50); do grep -q '^issuer' var/oidc-provider.log 2>/dev/null && break; sleep 0.2; done; \
	OIDC_ISSUER=http://127.0.0.1:$(OIDC_PORT) OIDC_CLIENT_ID=gateway-portal OIDC_CLIENT_SECRET=portal-secret \
	OIDC_API_AUDIENCE=urn:gatewayportal:api OIDC_PLATFORM_GROUPS=platform-engineers \
	OIDC_SCOPES="openid email profile groups" \
	$(MAKE) --no-print-directory run DEMO_ARGS="--idp-groups payments-devs"

services:
	@scripts/ensure-services.sh

# The admin's browser tests drive Debian's Chromium (never a downloaded browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { echo "Installing Debian's chromium for the browser tests..."; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq && \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

test: venv services browser oidc lint
	$(VENV)/bin/pytest -q

bench: venv services
	$(PY) -m tests.bench
	$(PY) -m tests.bench_api

# The fault tests at the issue's full durations (60 s outages, a 30 s concurrent writer); figures in var/.
soak: venv services
	rm -f var/fault-figures.txt
	SOAK=1 FAULT_FIGURES=var/fault-figures.txt TEST_DATABASE_NAME=$${TEST_DATABASE_NAME:-test_gp_soak} $(VENV)/bin/pytest tests/faults -s -q -p no:cacheprovider
	cat var/fault-figures.txt

# Schemathesis over every operation, at least 10,000 requests (about 8 minutes); see docs/reliability.md.
fuzz: venv services
	$(PY) -m tests.hostile.fuzz --examples 60

clean:
	rm -rf $(VENV) var .env
