"""dns-NAME for every DNS provider of dns-lexicon, and Certbot's own DNS plugin names.

Each plugin is a class made on first use (``dns_lexicon.cloudflare``, ``dns_lexicon.powerdns``),
registered as an entry point ``dns-NAME`` with the ``[dns]`` extra; :mod:`.dns_providers`
holds the names and Certbot's credentials keys. Options (:mod:`.dns_base`):
``--dns-NAME``, ``--dns-NAME-credentials FILE``, ``--dns-NAME-propagation-seconds N``, and
``--dns-resolver ADDRESS[:PORT]`` (shared): where questions about names go (CNAME, SOA,
NS), by default the system's first resolver. Certwright finds the zone and waits for the
zone's authoritative servers itself; lexicon only adds and deletes records, through the
provider's API.

Neither lexicon nor dnspython is imported until a plugin is prepared; a provider whose
own library is missing (``boto3`` for route53...) is named with what to install.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import logging
import os
import stat
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from certwright.authenticators.dns_base import DnsAuthenticator, Record, need
from certwright.authenticators.dns_providers import CERTBOT, LEXICON, CertbotPlugin
from certwright.core.errors import PluginError

if TYPE_CHECKING:
    from certwright.authenticators.dns_credentials import Credentials
    from certwright.authenticators.dns_lookup import Server
    from certwright.core.interfaces import AddArgument

TTL = 120


class LexiconAuthenticator(DnsAuthenticator):
    """Adds and removes TXT records through one lexicon provider."""

    provider: ClassVar[str] = ""
    certbot: ClassVar[CertbotPlugin | None] = None
    atomic_update: ClassVar[bool] = False  # one API call per record

    def __init__(self, config: argparse.Namespace) -> None:
        super().__init__(config)
        self.resolver: str | None = getattr(config, "dns_resolver", None) or None
        self._options: dict[str, str] = {}

    @classmethod
    def add_arguments(cls, add: AddArgument) -> None:
        super().add_arguments(add)
        with contextlib.suppress(argparse.ArgumentError):  # one for every provider
            add("--dns-resolver", dest="dns_resolver", default=None,
                metavar="ADDRESS[:PORT]", help="where the DNS provider plugins ask about "
                "names (CNAME, SOA, NS); default: the system's first resolver")

    def modules(self) -> Sequence[tuple[str, str]]:
        return (("dns.query", "dnspython"), ("lexicon.config", "dns-lexicon"))

    def prepare_provider(self) -> None:
        for module, package in self.modules():
            need(module, package, self.name)
        # some providers log their login payload (a password, a token) at debug level,
        # which would land in the log file: lexicon says info and up only
        logging.getLogger("lexicon").setLevel(logging.INFO)
        _ = self.propagation
        self._provider_module()
        kind = self.certbot.credentials if self.certbot else "ini"
        if kind == "json":  # a service-account file lexicon reads itself
            self._options = {"auth_service_account_info": "file::" + self._private_file()}
        elif kind == "optional" and not self.credentials_path:
            self._options = {}  # the library's own credentials (environment, ~/.aws)
        else:
            super().prepare_provider()
        self._server = self._lookup_server()

    def _private_file(self) -> str:
        if not self.credentials_path:
            raise PluginError(f"{self.name} needs a credentials file: give "
                              f"--{self.name}-credentials FILE")
        try:
            mode = os.stat(self.credentials_path).st_mode
        except OSError as exc:
            raise PluginError(f"{self.credentials_path}: can't read the credentials: "
                              f"{exc.strerror}") from None
        if mode & 0o077:
            raise PluginError(
                f"{self.credentials_path}: mode {stat.S_IMODE(mode):04o} lets other users "
                f"read these DNS credentials; make it 0600 (chmod 600 {self.credentials_path})")
        return self.credentials_path

    def _provider_module(self) -> Any:
        try:
            return importlib.import_module(f"lexicon._private.providers.{self.provider}")
        except ModuleNotFoundError as exc:
            if exc.name and not exc.name.startswith("lexicon"):
                raise PluginError(
                    f"{self.name} needs the Python package {exc.name}, which is not "
                    f"installed; install it with: pip install 'dns-lexicon[{self.provider}]'"
                ) from None
            raise PluginError(f"{self.name}: the installed dns-lexicon has no provider "
                              f"{self.provider!r}") from None

    def _provider_options(self) -> list[str]:
        parser = argparse.ArgumentParser(add_help=False)
        self._provider_module().Provider.configure_parser(parser)
        return [a.dest for a in parser._actions if a.option_strings]

    def setup(self, credentials: Credentials) -> None:
        prefix = self.prefix() + "_"
        valid = self.certbot.keys if self.certbot else {
            o: o for o in self._provider_options()}
        options: dict[str, str] = {}
        for key, value in credentials.values.items():
            suffix = key[len(prefix):] if key.startswith(prefix) else ""
            option = valid.get(suffix) if self.certbot else (
                suffix if suffix in valid else "auth_" + suffix if "auth_" + suffix in valid
                else None)
            if option is None:
                known = ", ".join(prefix + k for k in valid) or "none"
                raise credentials.bad(key, f"not a key of {self.name} (its keys: {known})")
            if option:
                options[option] = value
        if self.certbot is not None:
            options.update(self.certbot.fixed)
        if not options:
            raise PluginError(f"{credentials.path}: no {prefix}* key: nothing to log in to "
                              f"{self.provider} with")
        self._options = options

    def _lookup_server(self) -> Server:
        from certwright.authenticators import dns_lookup

        if self.resolver:
            host, port = _host_port(self.resolver)
            try:
                return dns_lookup.resolve_server(host, port)
            except dns_lookup.LookupFailed as exc:
                raise PluginError(f"--dns-resolver: {exc}") from None
        import dns.resolver

        try:
            first = dns.resolver.Resolver().nameservers[0]
        except (IndexError, dns.resolver.NoResolverConfiguration):
            raise PluginError(f"{self.name}: no DNS resolver configured on this system; give "
                              "--dns-resolver ADDRESS[:PORT]") from None
        return dns_lookup.Server(str(first))

    def lookup_server(self) -> Server:
        return self._server

    def share_key(self) -> tuple[str, ...]:
        return (self.name, str(self.credentials_path), str(self.propagation_raw),
                str(self.resolver))

    def _client(self, zone: str) -> Any:
        from lexicon import config as lexicon_config

        resolver: Any = lexicon_config.ConfigResolver  # untyped constructor
        config = resolver().with_dict({
            "provider_name": self.provider, "domain": zone, "ttl": TTL,
            self.provider: dict(self._options)})
        provider = self._provider_module().Provider(config)
        self._call(zone, "log in", provider.authenticate)
        return provider

    def _call(self, zone: str, what: str, action: Any, *args: Any) -> Any:
        try:
            return action(*args)
        except Exception as exc:  # a provider library's own errors, of any class
            text = str(exc) or type(exc).__name__
            for secret in self._options.values():
                if len(secret) >= 4:
                    text = text.replace(secret, "********")
            raise PluginError(f"{self.name}: {what} at {self.provider} for zone {zone} "
                              f"failed: {text}") from None

    def add_records(self, zone: str, records: Sequence[Record]) -> None:
        provider = self._client(zone)
        for record in records:
            self._call(zone, f"adding TXT {record.name}", provider.create_record, "TXT",
                       record.name, record.value)

    def delete_records(self, zone: str, records: Sequence[Record]) -> None:
        provider = self._client(zone)
        for record in records:
            self._call(zone, f"deleting TXT {record.name}", provider.delete_record, None,
                       "TXT", record.name, record.value)

    def renewal_params(self) -> Mapping[str, object]:
        params = dict(super().renewal_params())
        if not self.credentials_path:
            params.pop(f"{self.prefix()}_credentials", None)
        if self.resolver:
            params["dns_resolver"] = self.resolver
        return params


def _host_port(text: str) -> tuple[str, int]:
    """``ADDRESS``, ``ADDRESS:PORT``, ``[IPv6]:PORT`` or a bare IPv6 address."""
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise PluginError(f"--dns-resolver {text!r}: not ADDRESS[:PORT]")
    return host, int(port)


@functools.cache
def provider_class(name: str) -> type[LexiconAuthenticator]:
    """The plugin class ``dns-<name>`` (``name`` from :mod:`.dns_providers`)."""
    certbot = CERTBOT.get(name)
    if certbot is None and name not in LEXICON:
        raise AttributeError(name)
    provider = certbot.provider if certbot else name
    text = (f"{name} (Certbot's dns-{name} options) through dns-lexicon" if certbot
            else f"{name} through dns-lexicon")
    return type(f"Dns_{name}", (LexiconAuthenticator,), {
        "name": f"dns-{name}", "provider": provider, "certbot": certbot,
        "description": f"DNS provider {text} (dns-01)",
        "default_propagation": certbot.propagation if certbot else 60,
        "__module__": __name__, "__qualname__": f"Dns_{name}"})


def __getattr__(name: str) -> type[LexiconAuthenticator]:
    """``dns_lexicon.<provider>``: what the entry points name."""
    if name.startswith("_"):
        raise AttributeError(name)
    return provider_class(name)
