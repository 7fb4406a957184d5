"""Which virtual host answers a name: Apache 2.4's own choice (``server/vhost.c``), pure.

1. A connection's local address and port pick a *group*: the vhosts listing that exact IP
   and port (or that IP with any port). Only when no IP-specific vhost has it do the
   wildcard vhosts (``*`` or ``_default_``, Apache 2.4 treats them alike) for that port
   answer. IP-specific beats ``*`` even when the ``*`` vhost has the name.
2. Within the group, vhosts are tried in configuration order; the first whose
   ``ServerName`` equals the name, or one of whose ``ServerAlias`` names equals it or
   matches it as a glob (``*`` any run of characters, dots included; ``?`` one character;
   case-insensitive, as ``ap_strcasecmp_match``), wins. Note the order: an earlier vhost's
   wildcard alias beats a later vhost's exact ``ServerName``, as in Apache.
3. Otherwise the group's first vhost — its default — answers.

:func:`vhost_groups` lists the groups as ``apache2 -S`` prints them; :func:`choose` answers
for one name on one port across every group, and says when only a default (catch-all)
answers, when the name is left to ``mod_md`` or ``mod_macro``, and which dormant vhosts
carry the name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache

from certwright.installers.apache.model import Address, ApacheConfig, VirtualHost


class MatchKind(IntEnum):
    SERVER_NAME = 0
    ALIAS = 1
    WILDCARD_ALIAS = 2
    INHERITED_NAME = 3
    """The vhost has no ``ServerName``; the main server's matched (a catch-all really)."""
    DEFAULT = 4


@dataclass(frozen=True)
class Group:
    """The vhosts Apache consults for connections to ``address``, in order."""

    address: Address
    vhosts: tuple[VirtualHost, ...]

    @property
    def default(self) -> VirtualHost:
        return self.vhosts[0]


@dataclass(frozen=True)
class Answer:
    group: Group
    vhost: VirtualHost
    kind: MatchKind
    pattern: str

    @property
    def by_name(self) -> bool:
        return self.kind <= MatchKind.WILDCARD_ALIAS


@dataclass(frozen=True)
class NameChoice:
    """What answers ``name`` on ``port``: one :class:`Answer` per group of that port."""

    name: str
    port: int
    answers: tuple[Answer, ...]
    dormant: tuple[tuple[VirtualHost, str], ...]
    """Inactive vhosts that carry the name, with the condition that keeps them asleep."""
    left_alone: str | None
    """Why certwright must not touch this name (``mod_md``, ``mod_macro``), or ``None``."""
    main_server: tuple[str, ...] = ()
    """``Listen`` addresses on the port that no vhost covers: the main server answers
    every name there."""

    @property
    def by_name(self) -> tuple[Answer, ...]:
        return tuple(a for a in self.answers if a.by_name)

    @property
    def needs_own_vhost(self) -> bool:
        """Only a catch-all (a group's default, or the main server) answers the name
        somewhere: no vhost has it by name, or some listening address reaches no vhost."""
        return self.left_alone is None and (not self.by_name or bool(self.main_server))


@lru_cache(maxsize=4096)
def _glob(pattern: str) -> re.Pattern[str]:
    body = "".join(
        ".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern.lower()
    )
    return re.compile(body + r"\Z", re.DOTALL)


def wildcard_match(pattern: str, name: str) -> bool:
    return _glob(pattern).match(name.lower()) is not None


def match_vhost(vhost: VirtualHost, name: str) -> tuple[MatchKind, str] | None:
    """How ``vhost`` matches ``name`` by name (Apache's ``matches_aliases``), or ``None``."""
    name = name.lower().rstrip(".")
    if vhost.name is not None and vhost.name == name:
        kind = MatchKind.SERVER_NAME if vhost.server_name else MatchKind.INHERITED_NAME
        return kind, vhost.name
    for alias in vhost.exact_aliases:
        if alias == name:
            return MatchKind.ALIAS, alias
    for alias in vhost.wild_aliases:
        if wildcard_match(alias, name):
            return MatchKind.WILDCARD_ALIAS, alias
    return None


def vhost_groups(vhosts: Iterable[VirtualHost]) -> tuple[Group, ...]:
    """Vhosts grouped by address, each group in configuration order (``apache2 -S``)."""
    groups: dict[Address, list[VirtualHost]] = {}
    for vhost in vhosts:
        for address in vhost.addresses:  # twice listed, twice in the group, as in Apache
            groups.setdefault(address, []).append(vhost)
    return tuple(Group(address, tuple(members)) for address, members in groups.items())


def _covers(address: Address, port: int) -> bool:
    return address.port is None or address.port == port


def group_for(groups: Sequence[Group], ip: str, port: int) -> Group | None:
    """The group a connection to ``ip``:``port`` consults: IP-specific first, then ``*``;
    in each, an address with that port before one with any port (``*:80`` shadows ``*``
    on port 80, as a running Apache shows)."""
    ip = ip.lower().strip("[]")
    for host in (ip, "*"):
        for wanted in (port, None):
            for group in groups:
                if group.address.host == host and group.address.port == wanted:
                    return group
    return None


def groups_on(groups: Sequence[Group], port: int) -> tuple[Group, ...]:
    """The groups that answer some connection on ``port`` (shadowed ones left out)."""
    hosts = dict.fromkeys(g.address.host for g in groups if _covers(g.address, port))
    found = (group_for(groups, host, port) for host in hosts)
    return tuple(dict.fromkeys(g for g in found if g is not None))


def answer(group: Group, name: str) -> Answer:
    """The vhost of ``group`` that serves ``name``: first match in order, else the default."""
    for vhost in group.vhosts:
        found = match_vhost(vhost, name)
        if found is not None:
            return Answer(group, vhost, found[0], found[1])
    return Answer(group, group.default, MatchKind.DEFAULT, "")


def _left_alone(config: ApacheConfig, name: str, named: bool) -> str | None:
    lowered = name.lower()
    for mention in config.mdomains:
        names = [a.lower() for a in mention.args if a.lower() not in ("auto", "manual")]
        if lowered in names:
            return f"{name} is managed by mod_md ({mention.name} at {mention.where}): left alone"
    for mention in config.uses:
        if lowered in (arg.lower() for arg in mention.args[1:]):
            return (
                f"{name} comes from the mod_macro line `Use {' '.join(mention.args)}` at "
                f"{mention.where}: macros are not expanded, left alone"
            )
    if not named and config.uses:
        first = config.uses[0]
        return (
            f"{name} matches no vhost but mod_macro `Use` lines (first at {first.where}) may "
            f"make one: macros are not expanded, left alone"
        )
    return None


def choose(config: ApacheConfig, name: str, port: int = 80) -> NameChoice:
    """Every group on ``port`` and what it answers for ``name``."""
    groups = groups_on(vhost_groups(config.vhosts), port)
    answers = tuple(answer(g, name) for g in groups)
    named = any(a.by_name for a in answers)
    dormant = tuple(
        (vhost, cond)
        for vhost, cond in config.dormant
        if match_vhost(vhost, name) is not None and any(_covers(a, port) for a in vhost.addresses)
    )
    return NameChoice(
        name=name.lower(),
        port=port,
        answers=answers,
        dormant=dormant,
        left_alone=_left_alone(config, name, named),
        main_server=uncovered_listens(config, port),
    )


def uncovered_listens(config: ApacheConfig, port: int) -> tuple[str, ...]:
    """``Listen`` lines on ``port`` whose connections reach no vhost (so the main server)."""
    groups = vhost_groups(config.vhosts)
    out: list[str] = []
    for listen in config.listens:
        if listen.port != port:
            continue
        if listen.host:
            group = group_for(groups, listen.host, port)
        else:  # every address: covered only if a `*` group takes the port
            group = group_for([g for g in groups if g.address.wildcard], "*", port)
        if group is None:
            out.append(listen.where)
    return tuple(out)


@dataclass(frozen=True)
class WakeRisk:
    """A vhost that enabling a module would activate, and why that is dangerous."""

    vhost: VirtualHost
    reason: str


_REDIRECTS = frozenset({"rewriterule", "redirect", "redirectmatch", "redirectpermanent"})


def wake_risks(woken: Iterable[VirtualHost], ssl_port: int = 443) -> tuple[WakeRisk, ...]:
    """Among vhosts a module would wake: those that would serve ``ssl_port`` without
    ``SSLEngine on`` (plain http on the TLS port, Apache's AH01916), those that would
    start redirecting (an old https rewrite), and any other."""
    risks: list[WakeRisk] = []
    for vhost in woken:
        reasons: list[str] = []
        if any(_covers(a, ssl_port) for a in vhost.addresses) and not vhost.ssl_engine:
            reasons.append(f"would serve port {ssl_port} without SSLEngine on (AH01916)")
        redirects = [d for d in vhost.directives if d.name.lower() in _REDIRECTS]
        if redirects:
            first = redirects[0]
            reasons.append(f"would start redirecting ({first.name} at {first.where})")
        names = ", ".join(n for n in (vhost.name, *vhost.aliases) if n) or "no name"
        reason = "; ".join(reasons) or "would become active"
        risks.append(WakeRisk(vhost, f"{vhost.where} ({names}): {reason}"))
    return tuple(risks)
