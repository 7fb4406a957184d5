"""From options to a ready ACME client: the server URL, the transport, the account."""

from __future__ import annotations

import datetime
import logging
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from certwright.core.acme.client import AcmeClient
from certwright.core.acme.errors import AcmeError
from certwright.core.acme.jws import jwk_of
from certwright.core.acme.transport import Transport, default_user_agent
from certwright.core.cas import LE_PRODUCTION, LE_STAGING
from certwright.core.errors import ConfigError
from certwright.core.keys import KeySpec
from certwright.core.settings import Settings
from certwright.core.storage import accounts as store

log = logging.getLogger(__name__)


def server_url(config: Settings) -> str:
    """``--server``, else staging for ``--staging``/``--dry-run``, else Let's Encrypt."""
    if config.server:
        if config.staging and config.server not in (LE_STAGING, LE_PRODUCTION):
            raise ConfigError("--staging and --server name different CAs; give one of them")
        if config.staging:  # Let's Encrypt's production (given, or stored) -> its staging
            return LE_STAGING
        return str(config.server)
    if config.staging or config.dry_run:
        return LE_STAGING
    return LE_PRODUCTION


def is_staging(url: str) -> bool:
    """Certbot's rule for a test CA: Let's Encrypt's staging URL, or "staging" in it."""
    return url == LE_STAGING or "staging" in url


def refuse_test_over_real(config: Settings, name: str, stored: object) -> None:
    """Certbot's guard: a certificate from a real CA (``stored``: the lineage's server) is
    not replaced by one from a test CA unless --break-my-certs (a dry run saves nothing)."""
    if config.dry_run or config.break_my_certs:
        return
    if stored in (None, "", "None"):
        return
    url = server_url(config)
    if is_staging(url) and not is_staging(str(stored)):
        raise ConfigError(
            f"certificate {name!r} comes from {stored}; replacing it with one from the test "
            f"CA {url} would break it: give --break-my-certs to do it anyway")


def transport(config: Settings, url: str | None = None) -> Transport:
    """The process's one transport for the CA at ``url`` (default: the configured one),
    shared by every order, account and ARI request: one directory fetch, one nonce pool,
    one connection pool. ``--no-verify-ssl`` goes with every request, so that it wins over
    ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` (a session-wide ``verify`` does not)."""
    url = url or server_url(config)
    if config.no_verify_ssl:
        _quiet_insecure_warnings()
    return TRANSPORTS.get(url, verify=False if config.no_verify_ssl else None,
                          user_agent=user_agent(config))


def user_agent(config: Settings) -> str | None:
    """``--user-agent`` as given; else the default with ``--user-agent-comment`` in it
    (None: the transport's own default)."""
    if config.user_agent:
        return str(config.user_agent)
    comment = config.user_agent_comment
    return default_user_agent(comment) if comment else None


class Transports:
    """Transports by CA, made on first use and kept for the life of the process (a fleet
    issuing many certificates in one process talks to each CA through one of them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made: dict[tuple[str, bool | None, str | None], Transport] = {}

    def get(self, url: str, *, verify: bool | None = None,
            user_agent: str | None = None) -> Transport:
        key = (url, verify, user_agent)
        with self._lock:
            found = self._made.get(key)
            if found is None:
                found = self._made[key] = Transport(url, user_agent=user_agent, verify=verify)
            return found


TRANSPORTS = Transports()


_WARNED_INSECURE: list[bool] = []


def _quiet_insecure_warnings() -> None:
    """One line of our own instead of urllib3's warning on every new connection."""
    import warnings

    import urllib3

    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
    if not _WARNED_INSECURE:
        _WARNED_INSECURE.append(True)
        log.warning("--no-verify-ssl: the CA's TLS certificate is not checked")


def load_account(config: Settings, url: str) -> store.Account | None:
    """The account to use: ``--account`` (or the renewal conf's), else the oldest one.
    A damaged account that would be used, or passed over for a new registration, stops
    the run with the damaged file named: registering anew would re-point renewals."""
    broken: dict[str, str] = {}
    accounts = store.list_accounts(Path(config.config_dir), url, broken)
    if config.account in broken or (broken and not accounts):
        raise ConfigError(broken.get(config.account or "") or next(iter(broken.values())))
    for name, error in broken.items():
        log.warning("skipping account %s: %s", name, error)
    if config.account:
        for acct in accounts:
            if acct.id == config.account:
                return acct
        if config.given("account"):
            raise ConfigError(f"no account {config.account} for {url} in {config.config_dir}")
        # a renewal conf naming an account that is gone: use (or register) another
        log.warning("account %s (from the renewal configuration) is not in %s; using %s",
                    config.account, config.config_dir,
                    accounts[0].id if accounts else "a new account")
    return accounts[0] if accounts else None


def client_for(
    config: Settings,
    *,
    register_if_missing: bool = True,
    ask: Callable[[str], str] | None = None,
) -> tuple[AcmeClient, store.Account]:
    """A client logged in to the stored account, registering one when there is none."""
    url = server_url(config)
    if store.has_pending_keys(Path(config.config_dir), url):
        from certwright.core import rollover

        rollover.resolve_pending(config, url)
    acct = load_account(config, url)
    if acct is not None:
        return AcmeClient(transport(config, url), acct.key, kid=acct.uri), acct
    if not register_if_missing:
        raise ConfigError(
            f"no account for {url} in {config.config_dir}; run `certwright register` first"
        )
    return register(config, url, ask=ask)


def contact_from(email: str | None) -> list[str]:
    """``-m`` as ACME contact URLs (several addresses separated by commas)."""
    if not email:
        return []
    return ["mailto:" + e.strip() for e in email.split(",") if e.strip()]


def register(
    config: Settings, url: str, ask: Callable[[str], str] | None = None
) -> tuple[AcmeClient, store.Account]:
    email = config.email
    if not email and not config.register_unsafely_without_email:
        if config.noninteractive or ask is None:
            raise ConfigError(
                "an ACME account needs -m EMAIL (or --register-unsafely-without-email) "
                "when running non-interactively"
            )
        email = ask("Email address (for urgent notices from the CA): ").strip() or None
    client = AcmeClient(transport(config, url), jwk_of(KeySpec().generate()))
    directory = client.directory
    if not config.tos:
        tos = directory.terms_of_service or "(none published)"
        if config.noninteractive or ask is None:
            raise ConfigError(f"agree to the CA's terms of service with --agree-tos: {tos}")
        if ask(f"Terms of service: {tos}\nAgree? [y/N] ").strip().lower() not in ("y", "yes"):
            raise ConfigError("the CA's terms of service must be accepted to register")
    if directory.external_account_required and not (config.eab_kid and config.eab_hmac_key):
        raise ConfigError("this CA requires External Account Binding: give --eab-kid and "
                          "--eab-hmac-key")
    account = client.register(contact_from(email), agree_tos=True, eab_kid=config.eab_kid,
                              eab_hmac_key=config.eab_hmac_key,
                              eab_alg=config.eab_hmac_alg or "HS256")
    acct = store.Account(
        id=store.account_id_for_key(client.key),
        key=client.key,
        uri=account.url,
        body=dict(account.raw),
        meta={
            "creation_dt": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "creation_host": socket.getfqdn(),
        },
    )
    store.save_account(Path(config.config_dir), url, acct)
    log.info("registered account %s at %s", account.url, url)
    return client, acct


def explain_account_error(err: AcmeError, config: Settings, url: str) -> AcmeError:
    """Turn a stale stored account into an error that says what to do."""
    if err.code in ("accountDoesNotExist", "unauthorized") and "account" in err.detail.lower():
        acct = load_account(config, url)
        where = store.accounts_dir(Path(config.config_dir), url) / acct.id if acct else \
            store.accounts_dir(Path(config.config_dir), url)
        err.detail += (
            f" (the account stored in {where} is unknown to the CA, which may have been reset; "
            "move that directory away and run again to register a new account)"
        )
    return err
