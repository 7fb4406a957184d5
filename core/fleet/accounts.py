"""ACME accounts of the fleet: one for the hoster, or one per customer
(``--account-per customer``), registered on first use with that customer's contact.

Which account serves whom is kept in ``<config-dir>/fleet/accounts.json`` (per CA); the
accounts themselves are ordinary ones in ``accounts/``. Without a record the hoster uses
the oldest account the store has for that CA, as ``certonly`` would.
"""

from __future__ import annotations

import datetime
import json
import logging
import socket
import threading
from pathlib import Path

from certwright.core.acme.client import AcmeClient
from certwright.core.acme.jws import jwk_of
from certwright.core.acme.transport import Transport
from certwright.core.errors import ConfigError
from certwright.core.fleet.model import Domain
from certwright.core.keys import KeySpec
from certwright.core.storage import accounts as store
from certwright.core.storage.files import atomic_write, ensure_dir

log = logging.getLogger(__name__)
HOSTER = ""


class Accounts:
    def __init__(self, config_dir: Path, server: str, transport: Transport, *,
                 per_customer: bool, email: str | None, agree_tos: bool,
                 eab_kid: str | None = None, eab_hmac_key: str | None = None) -> None:
        self.config_dir = config_dir
        self.server = server
        self.transport = transport
        self.per_customer = per_customer
        self.email = email
        self.agree_tos = agree_tos
        self.eab = (eab_kid, eab_hmac_key)
        self.path = config_dir / "fleet" / "accounts.json"
        self._lock = threading.Lock()
        self._clients: dict[str, tuple[AcmeClient, str]] = {}

    def key_for(self, domain: Domain) -> str:
        return (domain.customer or HOSTER) if self.per_customer else HOSTER

    def client(self, domain: Domain) -> tuple[AcmeClient, str]:
        """The client and account id for ``domain``'s account, registering it once."""
        who = self.key_for(domain)
        with self._lock:
            found = self._clients.get(who)
            if found is None:
                found = self._clients[who] = self._load_or_register(who, domain)
            return found

    def _registry(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.path}: can't be read: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{self.path}: expected a JSON object")
        return data

    def _load_or_register(self, who: str, domain: Domain) -> tuple[AcmeClient, str]:
        registry = self._registry()
        known = registry.get(self.server, {})
        accounts = {a.id: a for a in store.list_accounts(self.config_dir, self.server)}
        acct_id = known.get(who)
        if acct_id is None and who == HOSTER and accounts:
            acct_id = sorted(accounts.values(), key=lambda a: str(a.meta.get(
                "creation_dt", "")))[0].id
        if acct_id is not None and acct_id in accounts:
            acct = accounts[acct_id]
            return AcmeClient(self.transport, acct.key, kid=acct.uri), acct.id
        if acct_id is not None:
            log.warning("account %s (for %s) is not in the store; registering anew",
                        acct_id, who or "the hoster")
        client, acct = self._register(domain.contact if who != HOSTER else None)
        registry.setdefault(self.server, {})[who] = acct.id
        ensure_dir(self.path.parent, 0o755)
        atomic_write(self.path, json.dumps(registry, indent=1, sort_keys=True).encode(), 0o644)
        return client, acct.id

    def _register(self, contact: str | None) -> tuple[AcmeClient, store.Account]:
        if not self.agree_tos:
            tos = self.transport.directory.terms_of_service or "(none published)"
            raise ConfigError(f"a new ACME account is needed: agree to the CA's terms of "
                              f"service with --agree-tos: {tos}")
        email = contact or self.email
        client = AcmeClient(self.transport, jwk_of(KeySpec().generate()))
        kid, hmac = self.eab
        account = client.register(["mailto:" + email] if email else [], agree_tos=True,
                                  eab_kid=kid, eab_hmac_key=hmac)
        acct = store.Account(
            id=store.account_id_for_key(client.key), key=client.key, uri=account.url,
            body=dict(account.raw),
            meta={"creation_dt": datetime.datetime.now(datetime.UTC).isoformat(
                timespec="seconds"), "creation_host": socket.getfqdn()})
        store.save_account(self.config_dir, self.server, acct)
        log.info("registered account %s at %s (contact %s)", account.url, self.server,
                 email or "none")
        return client, acct
