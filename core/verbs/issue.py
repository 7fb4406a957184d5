"""`certonly`: choose the lineage, the key and the authenticator, obtain, store."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from certwright.core import (
    __version__,
    flow,
    hooks,
    keys,
    names,
    pending_hooks,
    plugins,
    prompts,
    renewal_options,
    session,
)
from certwright.core.acme.errors import AcmeError
from certwright.core.due import should_renew
from certwright.core.errors import ConfigError, PluginError
from certwright.core.interfaces import Authenticator, Identifier
from certwright.core.settings import Settings
from certwright.core.storage import lineage as lineages
from certwright.core.storage.files import atomic_write
from certwright.core.storage.lineage import Lineage
from certwright.core.verbs import preflight

log = logging.getLogger(__name__)
Say = Callable[[str], None]


def authenticator_name(config: Settings) -> str:
    name = plugins.chosen(config, config.authenticator, plugins.AUTHENTICATORS)
    if name is None:
        raise ConfigError(
            "choose how to prove control of the names: --webroot -w DIR, --standalone, "
            "--manual, or -a NAME (see `certwright plugins`)"
        )
    return name


def load_authenticator(config: Settings) -> Authenticator:
    cls = plugins.find(plugins.AUTHENTICATORS, authenticator_name(config))
    auth: Authenticator = cls(config)
    auth.prepare()
    return auth


def key_spec(config: Settings) -> keys.KeySpec:
    return keys.KeySpec(
        key_type=config.key_type or "ecdsa",
        curve=config.elliptic_curve or "secp256r1",
        rsa_bits=config.rsa_key_size or 2048,
    )


class Target(NamedTuple):
    """What `certonly` is about to do: a new lineage, a renewal of one, or nothing."""

    identifiers: list[Identifier]
    lineage: Lineage | None
    name: str
    action: str  # "new", "renew", "expand", "keep"


def renewal_due(config: Settings, lineage: Lineage) -> bool:
    """The one rule `renew` uses too (:func:`certwright.core.due.should_renew`): the
    lifetime, ``renew_before_expiry``, the CA's ARI window, ``autorenew``, and
    --force-renewal / --dry-run (a dry run always tries, as in Certbot)."""
    from certwright.core.ari_check import AriCheck  # only when a lineage exists
    from certwright.core.lineage_cache import LineageCache

    cache = LineageCache(Path(config.work_dir))
    try:
        return should_renew(lineage, force=config.force_renewal or config.dry_run,
                            cache=cache, ari=AriCheck(config, cache))
    finally:
        cache.save()


def choose_target(config: Settings, idents: list[Identifier]) -> Target:
    config_dir = Path(config.config_dir)
    wanted = {i.value for i in idents}
    if config.certname:
        # no renewal conf: a new lineage; one that can't be read stops here, naming the
        # file (never a silent "foo-0001" beside it)
        existing = lineages.find_lineage(config_dir, config.certname)
        if existing is None:
            if not idents:
                raise ConfigError(f"no certificate named {config.certname!r} and no -d given")
            return Target(idents, None, config.certname, "new")
        if not idents:
            idents = [names.parse_identifier(n) for n in existing.names]
        return Target(idents, existing, existing.name, _action(config, existing, idents))
    if not idents:
        raise ConfigError("give the names for the certificate with -d DOMAIN")
    base = idents[0].value.removeprefix("*.")
    if config.duplicate:
        return Target(idents, None, base, "new")
    for candidate in lineages.list_lineages(config_dir):
        if candidate.error:
            _check_broken(candidate, base, wanted)
            continue
        have = set(candidate.names)
        if have == wanted:
            return Target(idents, candidate, candidate.name, _action(config, candidate, idents))
        if have < wanted:
            if not config.expand and config.noninteractive:
                raise ConfigError(
                    f"certificate {candidate.name!r} has {', '.join(sorted(have))}; to add "
                    f"{', '.join(sorted(wanted - have))} to it give --expand (or --cert-name)"
                )
            return Target(idents, candidate, candidate.name, "expand")
    return Target(idents, None, base, "new")


def _check_broken(candidate: Lineage, base: str, wanted: set[str]) -> None:
    """A lineage whose renewal conf can't be read, that these names would renew (or whose
    name a new lineage would take): stop, naming the file, rather than work around it."""
    try:
        have = set(candidate.names)
    except Exception:
        have = set()
    if candidate.name == base or (have and have <= wanted):
        raise ConfigError(f"{candidate.error} (certificate {candidate.name!r}; repair or "
                          "delete it first)")


def _action(config: Settings, lineage: Lineage, idents: list[Identifier]) -> str:
    if set(lineage.names) != {i.value for i in idents}:
        return "expand"
    return "renew" if renewal_due(config, lineage) else "keep"


def keep_key_type(config: Settings, lineage: Lineage) -> Settings:
    """Certbot's rule for re-issuing into a lineage: the key type stays what it is unless
    --key-type is given, and a change needs --cert-name too; the curve or RSA size stays
    unless given. Returns the settings to issue with."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    public = lineage.certificate.public_key()
    current = "rsa" if isinstance(public, rsa.RSAPublicKey) else "ecdsa"
    wanted = config.key_type or "ecdsa"
    kept: dict[str, object] = {}
    if wanted != current:
        if config.given("key_type") and config.given("certname"):
            return config
        if config.given("key_type"):
            raise ConfigError(
                f"are you trying to change the key type of the certificate named "
                f"{lineage.name} from {current.upper()} to {wanted.upper()}? Give both "
                "--cert-name and --key-type to confirm")
        kept["key_type"] = current
    if isinstance(public, ec.EllipticCurvePublicKey) and not config.given("elliptic_curve"):
        kept["elliptic_curve"] = public.curve.name
    if isinstance(public, rsa.RSAPublicKey) and not config.given("rsa_key_size"):
        kept["rsa_key_size"] = public.key_size
    return config.derive(**kept) if kept else config


def renewal_params(config: Settings, auth: Authenticator, account_id: str,
                   server: str) -> dict[str, object]:
    params: dict[str, object] = {
        "account": account_id,
        "authenticator": auth.name,
        "server": server,
    }
    if config.installer:
        params["installer"] = config.installer
    params.update(renewal_options.to_conf(config.option))
    params["key_type"] = key_spec(config).key_type
    if config.given("autorenew"):  # --no-autorenew given (a stored
        params["autorenew"] = False  # value is kept as written)
    params.update(auth.renewal_params())
    return params


def keep_installer_params(old: Mapping[str, object],
                          new: dict[str, object]) -> dict[str, object]:
    """``new`` plus what a run through certwright never sets but must not forget: the
    stored options of its installers (``<installer>_*`` of each, written at install time; a renewal
    through another authenticator must still find the server's configuration) and
    ``autorenew`` (an operator's switch, as in Certbot)."""
    from certwright.core.verbs.install import split_names

    prefixes = tuple(f"{name}_" for name in split_names(new.get("installer")))
    for key, value in old.items():
        if key in new:
            continue
        if key == "autorenew" or (prefixes and key.startswith(prefixes)):
            new[key] = value
    return new


def obtain(config: Settings, say: Say, ask: Callable[[str], str] | None) -> int:
    """`certonly`."""
    if config.csr:
        return _obtain_for_csr(config, say, ask)
    if config.installer:  # certonly -i: its renewals will install
        from certwright.core.verbs import install

        for name in install.split_names(config.installer):
            config = preflight.check(config, install.load_installer(config, name), say)
    obtain_lineage(config, say, ask)
    return 0


def obtain_lineage(config: Settings, say: Say,
                   ask: Callable[[str], str] | None) -> tuple[Lineage | None, bool]:
    """Pre hooks, issue (or keep), deploy hooks, post hooks. Returns the lineage (None
    after a dry run) and whether a certificate was issued."""
    idents = names.parse_domains(config.domains)
    target = choose_target(config, idents)
    if target.action == "keep":
        say(f"Certificate not yet due for renewal; no action taken ({target.name}, expires "
            f"{target.lineage.not_after:%Y-%m-%d})." if target.lineage else "No action taken.")
        return target.lineage, False
    if target.lineage is not None:
        if target.action == "expand" and config.certname:  # Certbot's question
            prompts.confirm_new_names(config, target.name, target.lineage.names,
                                      [i.value for i in target.identifiers], ask)
        config = keep_key_type(config, target.lineage)
    key_spec(config)  # a bad key option is refused before an account is made at the CA
    auth = load_authenticator(config)
    check_authenticator_for(target.identifiers, auth, config.pref_challs)
    preflight.check_challenges(auth, target.identifiers, config.pref_challs)
    runner = HookRunner(config, say)
    runner.pre()
    # killed between saving and the deploy hooks: the next renew runs them
    owed = pending_hooks.Owed(Path(config.work_dir), Path(config.config_dir), target.name,
                              config.dry_run)
    try:
        lineage = issue(config, target, auth, say, ask)
    except Exception:
        owed.failed()
        runner.post([], [i.value for i in target.identifiers])
        raise
    if lineage is None:
        say("The dry run was successful.")
        if target.lineage is not None:  # --run-deploy-hooks: with the current certificate
            runner.deploy(target.lineage)
        runner.post([], [])
        return None, False
    _report(say, lineage)
    runner.deploy(lineage)
    owed.done()
    runner.post(lineage.names, [])
    return lineage, True


def issue(config: Settings, target: Target, auth: Authenticator, say: Say,
          ask: Callable[[str], str] | None, replaces: str | None = None) -> Lineage | None:
    """Obtain a certificate for ``target`` and store it; None on a dry run. ``replaces``:
    the ARI certID of the certificate this order replaces (RFC 9773 §5)."""
    if target.lineage is not None:
        session.refuse_test_over_real(config, target.name, target.lineage.params.get("server"))
    client, account = session.client_for(config, ask=ask)
    key = _choose_key(config, target, key_spec(config))
    issued = _issue_subset(config, client, auth, target.identifiers, key, say,
                           replaces, ask)
    if config.dry_run:
        return None
    key_pem = keys.key_to_pem(key)
    params = renewal_params(config, auth, account.id, session.server_url(config))
    config_dir = Path(config.config_dir)
    if target.lineage is None:
        return lineages.new_lineage(
            config_dir, target.name, issued.cert.encode(), issued.chain.encode(),
            issued.fullchain.encode(), key_pem, params, __version__)
    lineage = target.lineage
    params = keep_installer_params(lineage.conf.params, params)
    same_key = key_pem == lineage.privkey_pem()
    lineage.save_successor(issued.cert.encode(), issued.chain.encode(),
                           issued.fullchain.encode(), None if same_key else key_pem, params,
                           __version__)
    return lineages.load_lineage(config_dir, lineage.name)


def _issue_subset(config: Settings, client: Any, auth: Authenticator,
                  idents: list[Identifier], key: Any, say: Say,
                  replaces: str | None, ask: Callable[[str], str] | None = None
                  ) -> flow.Issued:
    """The flow for ``idents``; with --allow-subset-of-names, names the CA did not
    validate are dropped and the rest asked for again in a new order, as in Certbot."""
    while True:
        csr = keys.make_csr(key, idents, must_staple=config.must_staple)
        try:
            return _run_flow(config, client, auth, idents, csr, say, replaces, ask)
        except flow.ValidationFailed as err:
            left = [i for i in idents if i.value not in err.failed]
            if not config.allow_subset_of_names or not left or len(left) == len(idents):
                raise
            say(f"Retrying without: {', '.join(err.failed)} ({err.detail})")
            idents = left


class HookRunner:
    """Runs the hooks of one command: pre once, deploy per lineage, post once.

    As in Certbot: the executables in ``renewal-hooks/<kind>/`` first, then the commands
    given (on the command line, or stored for the lineages at hand), each distinct command
    once. Pre and post hooks also run on a dry run (they usually stop and start a server
    that holds the port); deploy hooks do not, unless --run-deploy-hooks is given: then
    they run once the test succeeded, with the lineage's current certificate.
    """

    def __init__(self, config: Settings, say: Say) -> None:
        self.config = config
        self.say = say
        self.ran_pre = False
        self.config_dir = Path(config.config_dir)

    def _commands(self, kind: str, *given: str | None) -> list[str | None]:
        found: list[str | None] = []
        if self.config.directory_hooks:
            found += hooks.directory_hooks(self.config_dir, kind)
        return found + list(given)

    def pre(self, *stored: str | None) -> None:
        """``stored``: the pre hooks of the lineages about to be renewed."""
        if self.ran_pre:
            return
        self.ran_pre = True
        hooks.run_hooks(self._commands("pre", self.config.pre_hook, *stored), "pre",
                        warn=self.warn, timeout=hooks.hook_timeout(self.config))

    def deploy(self, lineage: Lineage, given: str | None = None) -> bool:
        if self.config.dry_run and not self.config.run_deploy_hooks:
            return True
        env = {"RENEWED_LINEAGE": str(lineage.live_dir),
               "RENEWED_DOMAINS": " ".join(lineage.names)}
        command = given if given is not None else self.config.deploy_hook
        return hooks.run_hooks(self._commands("deploy", command), "deploy", env, self.warn,
                               hooks.hook_timeout(self.config))

    def post(self, renewed: list[str], failed: list[str], *stored: str | None) -> None:
        """``stored``: the post hooks of the lineages that were attempted."""
        env = {"RENEWED_DOMAINS": " ".join(renewed), "FAILED_DOMAINS": " ".join(failed)}
        hooks.run_hooks(self._commands("post", self.config.post_hook, *stored), "post", env,
                        self.warn, hooks.hook_timeout(self.config))

    def warn(self, text: str) -> None:
        log.error("%s", text)  # a failed hook is said even under -q, as in Certbot


def _run_flow(config: Settings, client: Any, auth: Authenticator,
              idents: list[Identifier], csr: bytes, say: Say,
              replaces: str | None = None,
              ask: Callable[[str], str] | None = None) -> flow.Issued:
    opts = flow.Options(
        timeout=config.issuance_timeout,
        preferred_challenges=config.pref_challs or (),
        preferred_chain=config.preferred_chain,
        profile=choose_profile(config, client),
        replaces=replaces,
        fresh_authorizations=bool(config.dry_run),  # a dry run tests every challenge
        pause=prompts.challenge_pause(config, say, ask) if config.debug_challenges else None,
    )
    say(f"Requesting a certificate for {_names_text(idents)}")
    try:
        return flow.obtain(client, auth, idents, csr, opts)
    except AcmeError as err:
        raise session.explain_account_error(err, config, session.server_url(config)) from None


def _choose_key(config: Settings, target: Target, spec: keys.KeySpec) -> Any:
    lineage = target.lineage
    if lineage is not None and not config.new_key:
        reuse = config.reuse_key
        if reuse is None:
            reuse = str(lineage.conf.params.get("reuse_key", "False")).lower() == "true"
        if reuse:
            key = keys.load_private_key(lineage.privkey_pem(), str(lineage.privkey))
            explicit_type = config.key_type or config.elliptic_curve or config.rsa_key_size
            if not explicit_type or spec.matches(key):
                return key
            log.info("key type changed; generating a new key despite --reuse-key")
    return spec.generate()


def _obtain_for_csr(config: Settings, say: Say,
                    ask: Callable[[str], str] | None) -> int:
    path = Path(config.csr or "")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: can't read the CSR: {exc.strerror}") from None
    csr = keys.load_csr(data, str(path))
    idents = names.parse_domains(i.value for i in keys.csr_identifiers(csr))
    if config.domains:
        given = {i.value for i in names.parse_domains(config.domains)}
        extra = given - {i.value for i in idents}
        if extra:  # -d may repeat the CSR's names, not add to them
            raise ConfigError(f"{path}: the CSR does not name {', '.join(sorted(extra))}")
    if not idents:
        raise ConfigError(f"{path}: the CSR names no domain")
    paths = _csr_output_paths(config)
    auth = load_authenticator(config)
    client, _ = session.client_for(config, ask=ask)
    from cryptography.hazmat.primitives.serialization import Encoding

    issued = _run_flow(config, client, auth, idents, csr.public_bytes(Encoding.DER), say,
                       ask=ask)
    if config.dry_run:
        say("The dry run was successful.")
        return 0
    outputs = tuple(zip(paths, (issued.cert, issued.chain, issued.fullchain), strict=True))
    for out, pem in outputs:
        atomic_write(Path(out), pem.encode(), 0o644)
    say("Successfully received certificate.")
    say(f"Certificate is saved at: {Path(outputs[0][0]).absolute()}")
    say(f"Intermediate CA chain is saved at: {Path(outputs[1][0]).absolute()}")
    say(f"Full certificate chain is saved at: {Path(outputs[2][0]).absolute()}")
    return 0


def _csr_output_paths(config: Settings) -> tuple[str, str, str]:
    """Where --csr writes, as Certbot does: a path given must not exist yet (nothing is
    overwritten); the defaults take the first free ``NNNN_`` prefix in the current dir."""
    given = (config.cert_path, config.chain_path, config.fullchain_path)
    for path in given:
        if path and os.path.lexists(path):
            raise ConfigError(f"{path}: exists already; --csr does not overwrite, give "
                              "another path")
    kinds = ("cert", "chain", "fullchain")
    for n in range(10000):
        defaults = [f"{n:04d}_{kind}.pem" for kind in kinds]
        if not any(os.path.lexists(d) for d, g in zip(defaults, given, strict=True)
                   if not g):
            break
    else:
        raise ConfigError("no free NNNN_cert.pem name left here; give --cert-path")
    cert, chain, full = (g or d for g, d in zip(given, defaults, strict=True))
    return cert, chain, full


def _names_text(idents: list[Identifier]) -> str:
    values = [i.value for i in idents]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


def _report(say: Say, lineage: Lineage) -> None:
    say("Successfully received certificate.")
    say(f"Certificate is saved at: {lineage.fullchain}")
    say(f"Key is saved at:         {lineage.privkey}")
    say(f"This certificate expires on {lineage.not_after:%Y-%m-%d}.")
    say("These files will be updated when the certificate renews.")


def check_authenticator_for(idents: list[Identifier], auth: Authenticator,
                            preferred: Sequence[str] | None) -> None:
    """Refuse before any order is placed when a name can't be proven (wildcard + http-01,
    or --preferred-challenges the authenticator can't do, as Certbot does)."""
    for ident in idents:
        types = list(auth.challenge_types(ident))
        if ident.type == "ip" and (not types or preferred == ["dns-01"]):
            raise PluginError(f"{ident.value} is an IP address: it needs http-01 or "
                              f"tls-alpn-01 (RFC 8738 has no dns-01 for addresses), which the "
                              f"{auth.name} authenticator can't do here")
        if preferred and not ident.is_wildcard and not set(preferred) & set(types):
            raise PluginError(f"none of the preferred challenges ({', '.join(preferred)}) "
                              f"can be done by the {auth.name} authenticator, which does "
                              f"{', '.join(types) or 'none'}")
        if preferred and ident.is_wildcard and "dns-01" not in preferred:
            types = []
        if ident.is_wildcard and "dns-01" not in types:
            raise flow.wildcard_needs_dns(ident, auth.name)
        if not types:
            raise PluginError(f"the {auth.name} authenticator can't prove control of "
                              f"{ident.value}")


def choose_profile(config: Settings, client: Any) -> str | None:
    """``--required-profile`` must be offered; ``--preferred-profile`` falls back to the default."""
    required, preferred = config.required_profile, config.preferred_profile
    if not (required or preferred):
        return None
    if required and preferred:
        raise ConfigError("give --preferred-profile or --required-profile, not both")
    offered = client.directory.profiles
    if required:
        if required not in offered:
            raise ConfigError(f"the CA does not offer the profile {required!r} "
                              f"(offered: {', '.join(offered) or 'none'})")
        return str(required)
    if preferred in offered:
        return str(preferred)
    log.info("the CA does not offer the profile %r; using its default", preferred)
    return None
