# certwright — developer entry points. Each target installs what it needs.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
APT_PKGS := pebble nginx apache2 haproxy postfix dovecot-imapd dovecot-pop3d dovecot-managesieved \
            bind9 slapd ldap-utils \
            libaugeas-dev augeas-lenses pkg-config openssl curl
PY_SOURCES := core authenticators installers tests benchmarks

CERTBOT_VENV := .bench/certbot-venv
CERTBOT_VERSION := 5.8.0

.PHONY: demo test lint typecheck unit integration bench sysdeps venv certbot clean

sysdeps:
	@bash scripts/sysdeps.sh $(APT_PKGS)

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	env -u REQUESTS_CA_BUNDLE $(PY) -m pip install -q --upgrade pip
	env -u REQUESTS_CA_BUNDLE $(PY) -m pip install -q -e '.[dev,apache,nginx,ldap]'
	@touch $@

venv: $(VENV)/.installed

# Certbot in its own venv, for the side-by-side tests and the benchmark (never in the middle
# of a test run)
$(CERTBOT_VENV)/.installed-$(CERTBOT_VERSION):
	@test -x $(CERTBOT_VENV)/bin/python || python3 -m venv $(CERTBOT_VENV)
	env -u REQUESTS_CA_BUNDLE $(CERTBOT_VENV)/bin/pip install -q \
	    certbot==$(CERTBOT_VERSION) certbot-nginx==$(CERTBOT_VERSION)
	@touch $@

certbot: $(CERTBOT_VENV)/.installed-$(CERTBOT_VERSION)

demo: sysdeps venv
	$(PY) scripts/demo.py

lint: venv
	$(VENV)/bin/ruff check $(PY_SOURCES)

typecheck: venv
	@bash scripts/mypy-tree.sh $(VENV)

test: sysdeps venv certbot lint typecheck
	$(VENV)/bin/pytest -q -p no:cacheprovider tests

bench: sysdeps venv certbot
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) build .mypy_cache .mypy_tree .ruff_cache .demo .bench
