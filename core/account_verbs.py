"""Account verbs: register, show_account, update_account (contact, key rollover), unregister."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from certwright.core import session
from certwright.core.acme.errors import AcmeError
from certwright.core.errors import ConfigError
from certwright.core.settings import Settings
from certwright.core.storage import accounts as account_store

Say = Callable[[str], None]
Ask = Callable[[str], str] | None


def register(config: Settings, say: Say, ask: Ask) -> int:
    url = session.server_url(config)
    if session.load_account(config, url) is not None and not config.account:
        raise ConfigError(f"there is already an account for {url} in {config.config_dir}; "
                          "use update_account to change it")
    _, acct = session.register(config, url, ask)
    say(f"Account registered: {acct.uri}")
    return 0


def _stored_client(config: Settings) -> tuple[Any, account_store.Account, str]:
    url = session.server_url(config)
    client, acct = session.client_for(config, register_if_missing=False)
    return client, acct, url


def show_account(config: Settings, say: Say, ask: Ask) -> int:
    client, acct, url = _stored_client(config)
    try:
        remote = client.account()
    except AcmeError as err:
        raise session.explain_account_error(err, config, url) from None
    say(f"Account details for server {url}:")
    say(f"  Account URL: {remote.url}")
    say(f"  Account Thumbprint: {_thumbprint(acct)}")
    emails = [c.removeprefix("mailto:") for c in remote.contact]
    say(f"  Email contact: {', '.join(emails) if emails else 'none'}")
    say(f"  Status: {remote.status}")
    return 0


def _thumbprint(acct: account_store.Account) -> str:
    from certwright.core.acme.jws import thumbprint

    return thumbprint(acct.key)


def update_account(config: Settings, say: Say, ask: Ask) -> int:
    if config.rollover_key:
        from certwright.core import rollover

        return rollover.rollover(config, say, ask)
    client, acct, url = _stored_client(config)
    if not config.email and not config.register_unsafely_without_email:
        raise ConfigError("give the new contact with -m EMAIL (or "
                          "--register-unsafely-without-email to remove it)")
    remote = client.update_account(session.contact_from(config.email))
    acct.body = dict(remote.raw)
    account_store.save_account(Path(config.config_dir), url, acct)
    emails = [c.removeprefix("mailto:") for c in remote.contact]
    say(f"Your e-mail address was updated to {', '.join(emails) or 'none'}.")
    return 0


def unregister(config: Settings, say: Say, ask: Ask) -> int:
    client, acct, url = _stored_client(config)
    if ask is not None and ask("Deactivate this account? It can't be undone. [y/N] ") \
            .strip().lower() not in ("y", "yes"):
        say("Deactivation aborted.")
        return 1
    client.deactivate_account()
    account_store.delete_account(Path(config.config_dir), url, acct.id)
    say("Account deactivated.")
    return 0
