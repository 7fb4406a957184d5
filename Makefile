# certwright — developer entry points. Each target installs what it needs.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
APT_PKGS := pebble nginx apache2 haproxy postfix dovecot-imapd dovecot-pop3d dovecot-managesieved \
            bind9 slapd ldap-utils \
            libaugeas-dev augeas-lenses pkg-config openssl curl \
            pdns-server pdns-backend-sqlite3
PY_SOURCES := core authenticators installers tests benchmarks

CERTBOT_VENV := .bench/certbot-venv
CERTBOT_VERSION := 5.8.0

.PHONY: demo test lint typecheck unit integration bench sysdeps venv certbot clean certbot-dns bench-apache
.PHONY: bench-haproxy

sysdeps:
	@bash scripts/sysdeps.sh $(APT_PKGS)

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	env -u REQUESTS_CA_BUNDLE $(PY) -m pip install -q --upgrade pip
	env -u REQUESTS_CA_BUNDLE $(PY) -m pip install -q -e '.[dev,apache,nginx,dns,ldap]'
	@touch $@

venv: $(VENV)/.installed

# Certbot in its own venv, for the side-by-side tests and the benchmark (never in the middle
# of a test run)
$(CERTBOT_VENV)/.installed-$(CERTBOT_VERSION):
	@test -x $(CERTBOT_VENV)/bin/python || python3 -m venv $(CERTBOT_VENV)
	env -u REQUESTS_CA_BUNDLE $(CERTBOT_VENV)/bin/pip install -q \
	    certbot==$(CERTBOT_VERSION) certbot-nginx==$(CERTBOT_VERSION) \
	    certbot-apache==$(CERTBOT_VERSION)
	@touch $@

certbot: $(CERTBOT_VENV)/.installed-$(CERTBOT_VERSION)

# Certbot with certbot-dns-rfc2136, in a venv of its own (dns-01 interop test, DNS bench)
CERTBOT_DNS_VENV := .bench/certbot-dns-venv
$(CERTBOT_DNS_VENV)/.installed-$(CERTBOT_VERSION):
	@test -x $(CERTBOT_DNS_VENV)/bin/python || python3 -m venv $(CERTBOT_DNS_VENV)
	env -u REQUESTS_CA_BUNDLE $(CERTBOT_DNS_VENV)/bin/pip install -q \
	    certbot==$(CERTBOT_VERSION) certbot-dns-rfc2136==$(CERTBOT_VERSION)
	@touch $@

certbot-dns: $(CERTBOT_DNS_VENV)/.installed-$(CERTBOT_VERSION)

demo: sysdeps venv
	$(PY) scripts/demo.py

lint: venv
	$(VENV)/bin/ruff check $(PY_SOURCES)

typecheck: venv
	@bash scripts/mypy-tree.sh $(VENV)

test: sysdeps venv certbot certbot-dns lint typecheck
	@mkdir -p .coverage-data
	COVERAGE_FILE=$(CURDIR)/.coverage-data/.coverage $(VENV)/bin/pytest -q -p no:cacheprovider -n 3 --dist loadfile --cov --cov-report=term --cov-fail-under=85 tests

bench: sysdeps venv certbot certbot-dns
	$(PY) benchmarks/run.py
	$(PY) benchmarks/haproxy_swap.py

bench-haproxy: sysdeps venv
	$(PY) benchmarks/haproxy_swap.py

# install --apache side by side: Certbot's Apache plugin always installs on port 443, so in a
# private network namespace (root; loopback only)
bench-apache: sysdeps venv certbot
	unshare -n sh -c 'ip link set lo up && $(PY) benchmarks/run.py --only apache-install'

clean:
	rm -rf $(VENV) build .mypy_cache .mypy_tree .ruff_cache .demo .bench

# Postfix + Dovecot: renew through the installers vs the usual deploy hook (needs root)
.PHONY: bench-mail
bench: bench-mail
bench-mail: sysdeps venv
	$(PY) benchmarks/mail_renew.py
