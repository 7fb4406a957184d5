"""Account key rollover (RFC 8555 §7.3.5) that never loses the account.

The remote step cannot be undone, so it comes after the new key is safe on disk:

1. the new key is written beside the account's key as ``private_key.json.pending``
   (0600, atomic);
2. the CA is asked to switch (``keyChange``);
3. the switch is made here: the account is saved under the new key's id, renewal confs
   are re-pointed to it, the old account directory goes.

A crash or a failed write anywhere leaves a pending key behind. At the next start (any
command that talks to the CA with a stored account) it is tried: if the CA knows the
account by it, step 3 is finished; if the CA says it does not, it is dropped and the
account goes on with its old key; if the CA can't be asked, both stay for the next run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from josepy.jwk import JWK

from certwright.core import session
from certwright.core.acme.client import AcmeClient
from certwright.core.acme.errors import AcmeError
from certwright.core.acme.jws import jwk_of
from certwright.core.errors import CertwrightError, StorageError
from certwright.core.keys import KeySpec
from certwright.core.settings import Settings
from certwright.core.storage import accounts as store
from certwright.core.storage import lineage as lineages
from certwright.core.storage.renewal_conf import read_renewal_conf, write_renewal_conf

log = logging.getLogger(__name__)
Say = Callable[[str], None]
Ask = Callable[[str], str] | None


def rollover(config: Settings, say: Say, ask: Ask) -> int:
    client, acct = session.client_for(config, register_if_missing=False)
    url = session.server_url(config)
    config_dir = Path(config.config_dir)
    new_key = jwk_of(KeySpec().generate())
    pending = store.write_pending_key(config_dir, url, acct.id, new_key)
    try:
        client.change_key(new_key)
    except AcmeError:  # the CA said no: it still knows the old key
        store.drop_pending_key(config_dir, url, acct.id)
        raise
    except Exception as exc:  # no answer: whether it switched is found out next time
        raise CertwrightError(f"the CA did not confirm the key change ({exc}); the new key "
                              f"is kept in {pending} and the next run finishes or drops "
                              "it") from exc
    try:
        new_id, moved = finish(config_dir, url, acct, new_key)
    except CertwrightError as exc:
        raise CertwrightError(f"the CA now knows the account by its new key, but saving it "
                              f"failed: {exc}; the key is kept in {pending} and the next run "
                              "finishes the switch") from exc
    say(f"The account key was rolled over; account {acct.uri} is now {new_id}"
        + (f" ({moved} renewal configuration(s) updated)." if moved else "."))
    return 0


def finish(config_dir: Path, url: str, acct: store.Account, new_key: JWK) -> tuple[str, int]:
    """Step 3 (idempotent): the account under the new key's id, renewal confs re-pointed,
    the old directory (with the pending key) removed last."""
    new = store.Account(id=store.account_id_for_key(new_key), key=new_key, uri=acct.uri,
                        body=acct.body, meta=dict(acct.meta))
    store.save_account(config_dir, url, new)
    moved = repoint_lineages(config_dir, acct.id, new.id)
    if new.id != acct.id:
        store.delete_account(config_dir, url, acct.id)
    return new.id, moved


def repoint_lineages(config_dir: Path, old_id: str, new_id: str) -> int:
    moved = 0
    for lin in lineages.list_lineages(config_dir):
        if lin.error is None and str(lin.params.get("account")) == old_id:
            conf = read_renewal_conf(lin.conf.path)
            conf.params["account"] = new_id
            write_renewal_conf(conf)
            moved += 1
    return moved


_RESOLVING = threading.Lock()  # parallel renewals each start a client


def resolve_pending(config: Settings, url: str) -> list[str]:
    """Finish or drop the rollovers a crash interrupted for ``url``'s accounts; return
    one line per account handled. Costs one stat per account when there is none."""
    with _RESOLVING:
        return _resolve(config, url)


def _resolve(config: Settings, url: str) -> list[str]:
    config_dir = Path(config.config_dir)
    done = []
    for acct in store.list_accounts(config_dir, url):
        try:
            key = store.read_pending_key(config_dir, url, acct.id)
        except StorageError as exc:
            raise CertwrightError(f"{exc} (the new key of an interrupted rollover; move "
                                  "it away if the account works with its old key)") from None
        if key is None:
            continue
        client = AcmeClient(session.transport(config, url), key)
        try:
            known = client.lookup_account().url == acct.uri
        except AcmeError as exc:
            if exc.code != "accountDoesNotExist":
                raise
            known = False
        if known:
            new_id, _ = finish(config_dir, url, acct, key)
            done.append(f"finished an interrupted key rollover: account {acct.uri} is now "
                        f"{new_id}")
        else:
            store.drop_pending_key(config_dir, url, acct.id)
            done.append(f"dropped the new key of a key rollover the CA never made "
                        f"(account {acct.id} keeps its key)")
    for line in done:
        log.warning("%s", line)
    return done
