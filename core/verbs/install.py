"""`run`, `install`, `enhance` and `rollback`: the installer side of the tool."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certwright.core import plugins
from certwright.core.deploy import apply_plan, apply_with, expected_certificate
from certwright.core.errors import ConfigError, PluginError, UsageError
from certwright.core.installer_types import ChangePlan, DeployRequest, EnhanceRequest
from certwright.core.interfaces import Installer, SupportsEnhancements
from certwright.core.settings import Settings, Source
from certwright.core.storage import lineage as lineages
from certwright.core.storage.lineage import Lineage
from certwright.core.storage.renewal_conf import read_renewal_conf, write_renewal_conf
from certwright.core.transaction import temporary
from certwright.core.verbs import preflight

if TYPE_CHECKING:
    from certwright.core.verbs.issue import Target

log = logging.getLogger(__name__)
Say = Callable[[str], None]
Ask = Callable[[str], str] | None
ENHANCEMENTS = ("redirect", "hsts", "uir")


def installer_name(config: Settings, required: bool = True) -> str | None:
    name = plugins.chosen(config, config.installer, plugins.INSTALLERS)
    if name is None and required:
        installed = [p.name for p in plugins.discover(plugins.INSTALLERS) if p.cls]
        raise ConfigError("choose the server to install into with -i NAME or --NAME "
                          f"(installed: {', '.join(installed) or 'none'})")
    return name


def installer_names(config: Settings, required: bool = True) -> list[str]:
    """The installers chosen: ``-i`` may be given more than once (one certificate into
    several servers), kept as one comma-joined value (also in the renewal conf)."""
    name = installer_name(config, required)
    return split_names(name)


def split_names(value: object) -> list[str]:
    if value in (None, "", "None"):
        return []
    return list(dict.fromkeys(n.strip() for n in str(value).split(",") if n.strip()))


def load_installer(config: Settings, name: str | None = None) -> Installer:
    name = name or installer_name(config)
    if name and "," in name:
        raise ConfigError(f"this takes one installer; {name.replace(',', ', ')} were given")
    cls = plugins.find(plugins.INSTALLERS, name or "")
    inst: Installer = cls(config)
    inst.prepare()
    return inst


def request_for(config: Settings, lineage: Lineage | None) -> DeployRequest:
    if lineage is not None:
        return DeployRequest(
            cert_name=lineage.name, domains=tuple(lineage.names), cert_path=str(lineage.cert),
            key_path=str(lineage.privkey), chain_path=str(lineage.chain),
            fullchain_path=str(lineage.fullchain), https_port=config.https_port,
            http_port=config.http01_port)
    if not (config.cert_path and config.key_path and config.domains):
        raise ConfigError("say what to install: --cert-name NAME, or --cert-path, --key-path "
                          "(and --fullchain-path, --chain-path) with -d DOMAIN")
    from certwright.core.names import parse_domains

    domains = tuple(i.value for i in parse_domains(config.domains))
    fullchain = config.fullchain_path or config.cert_path
    return DeployRequest(
        cert_name=domains[0].removeprefix("*."), domains=domains, cert_path=config.cert_path,
        key_path=config.key_path, chain_path=config.chain_path or fullchain,
        fullchain_path=fullchain, https_port=config.https_port, http_port=config.http01_port)


def _would_be(config: Settings, target: Target | None = None) -> DeployRequest:
    """The request a real run would make: the lineage's live/ paths, existing or not
    (``target``: the one already chosen)."""
    from certwright.core import names
    from certwright.core.verbs import issue

    if target is None:
        target = issue.choose_target(config, names.parse_domains(config.domains))
    live = Path(config.config_dir) / "live" / target.name
    return DeployRequest(
        cert_name=target.name, domains=tuple(i.value for i in target.identifiers),
        cert_path=str(live / "cert.pem"), key_path=str(live / "privkey.pem"),
        chain_path=str(live / "chain.pem"), fullchain_path=str(live / "fullchain.pem"),
        https_port=config.https_port, http_port=config.http01_port)


def deploy(config: Settings, installer: Installer, req: DeployRequest,
           say: Say) -> None:
    plan = installer.plan_deploy(req)
    expected = None if config.dry_run else expected_certificate(req.cert_path)
    wanted = frozenset() if config.dry_run else check_enhancements(config, installer)
    if wanted:
        _deploy_enhanced(config, installer, req, plan, expected, wanted, say)
        return
    apply_plan(installer, plan, work_dir=Path(config.work_dir), say=say,
               endpoints=installer.endpoints(req), expected_der=expected,
               dry_run=config.dry_run)
    if not config.dry_run:
        say(f"Successfully deployed certificate for {', '.join(req.domains)} to "
            f"{installer.name}.")
    elif not plan.empty and _enhancements(config):
        # the enhancements build on the deploy: plan them on its files, applied for a
        # moment in a temporary transaction (no reload; undone, also on a signal)
        undo = temporary(Path(config.work_dir), plan, lambda: None, installer.name)
        try:
            enhance_with(config, installer, req.domains, say)
        finally:
            undo()
        return
    enhance_with(config, installer, req.domains, say)


def _deploy_enhanced(config: Settings, installer: Installer, req: DeployRequest,
                     plan: ChangePlan, expected: bytes | None, wanted: frozenset[str],
                     say: Say) -> None:
    """The deploy and its enhancements (``run``/``install`` redirect by default) with one
    config test each and one reload: the enhancements are planned on the deployed files.
    When they fail, the deploy still goes live; their error is raised after it."""
    planned: list[ChangePlan] = []

    def enhancements() -> ChangePlan:
        planned.append(_enhance_plan(config, installer, req.domains)[0])
        return planned[0]

    failed = apply_with(installer, plan, enhancements, work_dir=Path(config.work_dir),
                        say=say, endpoints=installer.endpoints(req), expected_der=expected)
    say(f"Successfully deployed certificate for {', '.join(req.domains)} to "
        f"{installer.name}.")
    if failed is not None:
        raise failed
    say(_enabled(planned[0], wanted, req.domains))


def _enhancements(config: Settings) -> frozenset[str]:
    """The enhancements asked for (``ENHANCEMENTS``' names)."""
    asked = {"redirect": config.redirect, "hsts": config.hsts, "uir": config.uir}
    return frozenset(e for e, on in asked.items() if on)


def redirect_by_default(config: Settings, installer: Installer) -> Settings:
    """Certbot's default for `run` and `install` (not `enhance`): redirect http to https
    unless --no-redirect is given, when the installer can."""
    if config.redirect is None and isinstance(installer, SupportsEnhancements) \
            and "redirect" in installer.supported_enhancements():
        return config.derive(redirect=True)
    return config


def check_enhancements(config: Settings, installer: Installer) -> frozenset[str]:
    """The enhancements asked for; an error, before anything is done, when the installer
    can't do one (``auto-hsts``: none here can yet)."""
    wanted = _enhancements(config)
    if config.auto_hsts:
        wanted |= {"auto-hsts"}
    if not wanted:
        return wanted
    if not isinstance(installer, SupportsEnhancements):
        raise PluginError(f"the {installer.name} installer supports no enhancements")
    unsupported = wanted - installer.supported_enhancements()
    if unsupported:
        raise PluginError(f"the {installer.name} installer can't do: "
                          f"{', '.join(sorted(unsupported))}")
    return wanted


def _enhance_plan(config: Settings, installer: Installer, domains: tuple[str, ...]
                  ) -> tuple[ChangePlan, frozenset[str]]:
    """The plan for the enhancements asked for (an empty one when none is), and them."""
    wanted = check_enhancements(config, installer)
    if not wanted or not isinstance(installer, SupportsEnhancements):  # (checked there)
        return ChangePlan("no enhancements"), frozenset()
    req = EnhanceRequest(domains=domains, enhancements=wanted, https_port=config.https_port,
                         http_port=config.http01_port)
    return installer.plan_enhance(req), wanted


def enhance_with(config: Settings, installer: Installer,
                 domains: tuple[str, ...], say: Say) -> None:
    plan, wanted = _enhance_plan(config, installer, domains)
    if not wanted:
        return
    apply_plan(installer, plan, work_dir=Path(config.work_dir), say=say,
               dry_run=config.dry_run)
    if not config.dry_run:
        say(_enabled(plan, wanted, domains))


def _enabled(plan: ChangePlan, wanted: frozenset[str], domains: Sequence[str]) -> str:
    done = "Already enabled:" if plan.empty else "Enabled"
    return f"{done} {', '.join(sorted(wanted))} for {', '.join(domains)}."


def remember_installer(lineage: Lineage, *installers: Installer) -> None:
    """Store the installers (several: comma-joined) and their options, so `renew`
    installs into each."""
    conf = read_renewal_conf(lineage.conf.path)
    conf.params["installer"] = ",".join(i.name for i in installers)
    for installer in installers:
        conf.params.update(installer.renewal_params())
    write_renewal_conf(conf)


def names_from_installer(config: Settings, installer: Installer, say: Say) -> Settings:
    """``run`` without ``-d`` or ``--cert-name``: the names the server says it serves (a
    mail server's ``myhostname``), sorted, when it names any."""
    if config.domains or config.certname:
        return config
    found = sorted(installer.discover_names())
    if not found:
        return config
    say(f"No -d given: using the names {installer.name} serves: {', '.join(found)}")
    return config.derive(domains=found)


# -- verbs --------------------------------------------------------------------------------
def run(config: Settings, say: Say, ask: Ask) -> int:
    """Obtain (or keep) a certificate, then install it."""
    from certwright.core.verbs import issue

    names = installer_names(config)
    config = config.derive(installer=",".join(names))
    if plugins.chosen(config, config.authenticator, plugins.AUTHENTICATORS) is None:
        if plugins.load_named(plugins.AUTHENTICATORS, names[0]) is None:
            raise ConfigError(f"the {names[0]} installer does not answer ACME challenges: "
                              "choose an authenticator too (--standalone, --webroot -w DIR, "
                              "--manual, ...)")
        config = config.derive(authenticator=names[0])  # `-i nginx` alone: nginx also
    installers = [load_installer(config, name) for name in names]  # answers the challenges
    config = names_from_installer(config, installers[0], say)
    for installer in installers:
        config = redirect_by_default(config, installer)
        check_enhancements(config, installer)  # before a certificate is asked for
        config = preflight.check(config, installer, say)  # a refusal before any order
    lineage, _ = issue.obtain_lineage(config, say, ask)
    if lineage is None:  # dry run: show the config diff the install would make
        for installer in installers:
            deploy(config, installer, _would_be(config), say)
        return 0
    req = request_for(config, lineage)
    for installer in installers:
        preflight.check_certificate(installer, req)
    for installer in installers:
        deploy(config, installer, req, say)
    remember_installer(lineage, *installers)
    return 0


def _stored_installer(config: Settings, lineage: Lineage) -> Settings:
    """Without -i/--NAME, the installer stored for the lineage, with its stored options
    (``<installer>_*``, the ports) unless given on this command line."""
    if installer_name(config, required=False) is not None:
        return config
    stored = split_names(lineage.params.get("installer"))
    if not stored:
        return config
    found: dict[str, object] = {"installer": ",".join(stored)}
    prefixes = tuple(f"{name}_" for name in stored)
    for key, value in lineage.params.items():
        if config.given(key):
            continue
        if key.startswith(prefixes):
            found[key] = value
        elif key in ("https_port", "http01_port") and str(value).isascii() and str(value).isdigit():
            found[key] = int(str(value))
    return config.derive(Source.RENEWAL_CONF, **found)


def install(config: Settings, say: Say, ask: Ask) -> int:
    lineage = lineages.load_lineage(Path(config.config_dir), config.certname) \
        if config.certname else None
    if lineage is not None:
        config = _stored_installer(config, lineage)
    installers = [load_installer(config, name) for name in installer_names(config)]
    req = request_for(config, lineage)
    for installer in installers:
        config = redirect_by_default(config, installer)
        check_enhancements(config, installer)
        preflight.check_certificate(installer, req)  # its key type: refused before a change
    for installer in installers:  # one server after the other, each verified
        deploy(config, installer, req, say)
    if lineage is not None and not config.dry_run:
        remember_installer(lineage, *installers)
    return 0


def enhance(config: Settings, say: Say, ask: Ask) -> int:
    if not _enhancements(config):
        raise ConfigError("say which enhancement: --redirect, --hsts or --uir")
    if config.certname:
        lineage = lineages.load_lineage(Path(config.config_dir), config.certname)
        domains = tuple(lineage.names)
        config = _stored_installer(config, lineage)
    elif config.domains:
        from certwright.core.names import parse_domains

        domains = tuple(i.value for i in parse_domains(config.domains))
    else:
        raise ConfigError("say what to enhance: --cert-name NAME or -d DOMAIN")
    enhance_with(config, load_installer(config), domains, say)
    return 0


def rollback(config: Settings, say: Say, ask: Ask) -> int:
    """Undo the last N checkpoints (one per command that changed a configuration), newest
    first; then config-test and reload each server involved."""
    from certwright.core.transaction import checkpoints, rollback_checkpoint

    count = config.checkpoints
    if count < 0:
        raise UsageError(f"--checkpoints {count}: give the number of checkpoints to roll "
                         "back (0 or more)")
    if count == 0:
        say("--checkpoints 0: nothing rolled back.")
        return 0
    work_dir = Path(config.work_dir)
    found = checkpoints(work_dir)
    if not found:
        say("There are no configuration changes to roll back.")
        return 0
    chosen = list(reversed(found))[:count]
    say(f"Rolling back {len(chosen)} of {len(found)} checkpoint(s), newest first:")
    for group in chosen:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(group[0].manifest.created))
        say(f"  {when}  {' + '.join(t.manifest.title for t in group)}")
    servers: dict[str, dict[str, Any]] = {}
    for group in chosen:
        restored = rollback_checkpoint(group)
        titles = " + ".join(t.manifest.title for t in group)
        say(f"Rolled back {titles!r} ({len(restored)} file(s))")
        for txn in reversed(group):
            if txn.manifest.installer:
                servers.setdefault(txn.manifest.installer, txn.manifest.installer_params)
    for name, params in servers.items():
        stored = {k: v for k, v in params.items() if not config.given(k)}
        installer = load_installer(config.derive(Source.RENEWAL_CONF, **stored), name)
        installer.config_test()
        installer.reload()
        say(f"{name}: configuration test passed and the server was reloaded.")
    return 0
