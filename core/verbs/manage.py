"""`revoke`, `delete` and `reconfigure`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

from certwright.core import lineage_cache, pending_hooks, session
from certwright.core.acme.client import REVOCATION_REASONS, AcmeClient
from certwright.core.acme.jws import jwk_of
from certwright.core.errors import CertwrightError, ConfigError, StorageError
from certwright.core.keys import load_private_key
from certwright.core.settings import Settings, Source
from certwright.core.storage import lineage as lineages
from certwright.core.storage.renewal_conf import read_renewal_conf, write_renewal_conf
from certwright.core.verbs import redeploy

if TYPE_CHECKING:
    from certwright.core.interfaces import Installer, SupportsDelete

log = logging.getLogger(__name__)
Say = Callable[[str], None]
Ask = Callable[[str], str] | None


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: can't read the {what}: {exc.strerror}") from None


def revoke(config: Settings, say: Say, ask: Ask) -> int:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    config_dir = Path(config.config_dir)
    lineage = None
    if config.certname:
        lineage = lineages.load_lineage(config_dir, config.certname)
        cert_path = lineage.cert
        stored: dict[str, str] = {}
        for key, value in (("server", config.server), ("account", config.account)):
            if not value and lineage.params.get(key) not in (None, "None"):
                stored[key] = str(lineage.params[key])
        config = config.derive(Source.RENEWAL_CONF, **stored)
    elif config.cert_path:
        cert_path = Path(config.cert_path)
        lineage = _lineage_for_cert(config_dir, cert_path)
    else:
        raise ConfigError("say which certificate to revoke: --cert-name NAME or --cert-path FILE")
    try:
        cert = x509.load_pem_x509_certificate(_read(cert_path, "certificate"))
    except ValueError:
        raise ConfigError(f"{cert_path}: not a PEM certificate") from None
    der = cert.public_bytes(Encoding.DER)
    reason = REVOCATION_REASONS[config.reason]
    if config.key_path:
        key = load_private_key(_read(Path(config.key_path), "key"), config.key_path)
        if key.public_key() != cert.public_key():
            raise ConfigError(f"{config.key_path}: this key does not belong to {cert_path}")
        client = AcmeClient(session.transport(config), jwk_of(key))
        client.revoke(der, reason, cert_key=client.key)
    else:
        client, _ = session.client_for(config, register_if_missing=False)
        client.revoke(der, reason)
    say(f"Congratulations! You have successfully revoked the certificate that was located at "
        f"{cert_path}.")
    if lineage is not None and _should_delete(config, ask, lineage.name):
        _delete_lineage(config, lineage, say)
    return 0


def _lineage_for_cert(config_dir: Path, cert_path: Path) -> lineages.Lineage | None:
    try:
        resolved = cert_path.resolve()
    except OSError:
        return None
    for lin in lineages.list_lineages(config_dir):
        if lin.error is None and resolved.parent in (lin.live_dir.resolve(),
                                                     Path(lin.archive_dir).resolve()):
            return lin
    return None


def _should_delete(config: Settings, ask: Ask, name: str) -> bool:
    if config.delete_after_revoke is not None:
        return bool(config.delete_after_revoke)
    if ask is None:
        return True  # Certbot's default answer
    answer = ask(f"Delete the certificate {name} and all its versions? [Y/n] ")
    return answer.strip().lower() not in ("n", "no")


def delete(config: Settings, say: Say, ask: Ask) -> int:
    if not config.certname:
        raise ConfigError("say which certificate to delete: --cert-name NAME")
    config_dir = Path(config.config_dir)
    try:
        lineage = lineages.load_lineage(config_dir, config.certname)
    except StorageError as exc:
        # a conf that can't be used must not keep its lineage from being deleted: the
        # store's own paths for that name are removed, nothing a broken conf names
        broken = [lin for lin in lineages.list_lineages(config_dir)
                  if lin.name == config.certname and lin.error]
        if not broken:
            raise
        lineage = broken[0]
        say(f"Warning: {exc}; deleting only the store's own files for {lineage.name}.")
    if ask is not None and ask(f"Delete {lineage.name} ({_names_text(lineage)})? [y/N] ") \
            .strip().lower() not in ("y", "yes"):
        say("Nothing deleted.")
        return 1
    _delete_lineage(config, lineage, say)
    return 0


def _names_text(lineage: lineages.Lineage) -> str:
    try:
        return ", ".join(lineage.names)
    except CertwrightError:
        return "its certificate can't be read"


def _delete_lineage(config: Settings, lineage: lineages.Lineage, say: Say) -> None:
    for installer in _installers_of(config, lineage):
        _forget(config, installer, lineage, say)
    lineages.delete_lineage(Path(config.config_dir), lineage.name)
    redeploy.unmark(Path(config.work_dir), lineage.name)
    pending_hooks.unmark(Path(config.work_dir), lineage.name)
    lineage_cache.forget(Path(config.work_dir), lineage)
    say(f"Deleted all files relating to certificate {lineage.name}.")


def _installers_of(config: Settings,
                   lineage: lineages.Lineage) -> list[SupportsDelete]:
    """The lineage's stored installers (``installer = a,b``: each) that can take a
    certificate out of their server's configuration; one that can't be loaded is left out
    (never a reason not to delete)."""
    from certwright.core.interfaces import SupportsDelete
    from certwright.core.verbs import install, renew

    if lineage.error:
        return []
    found: list[SupportsDelete] = []
    for name in install.split_names(lineage.conf.params.get("installer")):
        try:
            installer = install.load_installer(renew.lineage_config(config, lineage), name)
        except (CertwrightError, OSError) as exc:
            log.warning("could not load the installer %s of %s: %s", name, lineage.name, exc)
            continue
        if isinstance(installer, SupportsDelete):
            found.append(installer)
    return found


def _forget(config: Settings, installer: SupportsDelete,
            lineage: lineages.Lineage, say: Say) -> None:
    """Remove the installer's own server block for the lineage (config test, reload); warn
    about the lines of the user's own files that still name it."""
    from certwright.core.deploy import apply_plan

    plan = installer.plan_forget(lineage.name, lineage.names)
    if not plan.empty:
        apply_plan(cast("Installer", installer), plan, work_dir=Path(config.work_dir), say=say)
        say(f"{plan.title} (rollback --checkpoints 1 brings it back).")
    found = installer.references(f"{lineage.live_dir}/")
    if found:
        more = f" and {len(found) - 3} more" if len(found) > 3 else ""
        say(f"Warning: {cast('Installer', installer).name} still uses this certificate at "
            f"{', '.join(found[:3])}{more}; once {lineage.live_dir} is gone that server "
            "will fail its next reload or restart.")


def reconfigure(config: Settings, say: Say, ask: Ask) -> int:
    """Change stored renewal options after a dry-run renewal with them succeeds."""
    from certwright.core import names
    from certwright.core.verbs import issue, renew

    if not config.certname:
        raise ConfigError("say which certificate to reconfigure: --cert-name NAME")
    config_dir = Path(config.config_dir)
    lin = lineages.load_lineage(config_dir, config.certname)
    # a dry run: the flow then deactivates reused authorizations, a real test
    ns = renew.lineage_config(config, lin).derive(dry_run=True)
    if config.given("webroot_path") and not config.given("webroot_map"):
        # `--webroot -w DIR` moves every name, not only unmapped ones
        ns = ns.derive(webroot_map=None)
    auth = issue.load_authenticator(ns)
    target = issue.Target(names.parse_domains(lin.names), lin, lin.name, "renew")
    if config.given("deploy_hook") and not ns.run_deploy_hooks and ask is not None:
        ns = ns.derive(run_deploy_hooks=ask(  # as Certbot asks
            "Run the deploy hooks (directory hooks too, unless --no-directory-hooks) after "
            "the dry run, with the current certificate? [y/N] ").strip().lower() in ("y", "yes"))
    say(f"Simulating a renewal of {lin.name} with the new options...")
    issue.issue(ns, target, auth, say, None)
    if ns.run_deploy_hooks:  # the test passed: the hooks get the current certificate
        issue.HookRunner(ns, say).deploy(lin, ns.deploy_hook)
    _, account = session.client_for(ns, register_if_missing=False)
    params = issue.renewal_params(ns, auth, account.id, session.server_url(ns))
    conf = read_renewal_conf(lin.conf.path)
    conf.params = issue.keep_installer_params(conf.params, params)
    write_renewal_conf(conf)
    say(f"Successfully updated the renewal options of {lin.name}.")
    return 0
