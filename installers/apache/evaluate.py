"""Walk an Apache configuration the way Apache reads it, into an :class:`ApacheConfig`.

Apache reads its configuration top to bottom and acts on some directives while reading:
``LoadModule``, ``Define``/``UnDefine``, ``ServerRoot``, ``Include``/``IncludeOptional``,
``<IfModule>``, ``<IfDefine>``, ``<IfVersion>``, ``<IfFile>``. The walk does the same, in
order, so a condition sees exactly the modules and variables loaded before it. ``${VAR}``
resolves against ``Define``s first, then the environment (Debian's ``envvars``), and stays
as written (with a warning) when neither has it, as Apache does.

Vhosts inside a condition that is false are *dormant*: not candidates, but reported.
:meth:`Evaluator.waking` tells which vhosts would become active if modules (``mod_ssl``)
were loaded — the configuration Certbot's Apache plugin wakes without looking.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from certwright.core.errors import PluginError
from certwright.installers.apache.binary import DEFAULT_BINARY, BinaryInfo, module_names
from certwright.installers.apache.includes import expand
from certwright.installers.apache.layouts import Layout, detect_layout, read_envvars
from certwright.installers.apache.model import (
    Address,
    ApacheConfig,
    Listen,
    Mention,
    Node,
    VirtualHost,
)
from certwright.installers.apache.tree import AugeasReader

MAX_DEPTH = 128
CONDITIONS = frozenset({"ifmodule", "ifdefine", "ifversion", "iffile", "ifdirective", "ifsection"})
_VAR = re.compile(r"\$\{([^}]+)\}")
_MODULE_PREFIXES = (("ssl", "ssl_module"), ("rewrite", "rewrite_module"), ("md", "md_module"))
_MODULE_OF = {
    "header": "headers_module",
    "requestheader": "headers_module",
    "use": "macro_module",
    "macro": "macro_module",
}


@functools.lru_cache(maxsize=1024)
def module_needed(directive: str) -> str | None:
    """The module that defines ``directive``, for the few modules certwright deals with."""
    kind = directive.lower()
    if kind in _MODULE_OF:
        return _MODULE_OF[kind]
    for prefix, module in _MODULE_PREFIXES:
        if kind.startswith(prefix):
            return module
    return None


def unquote(arg: str) -> str:
    """An argument as Apache's ``ap_getword_conf`` reads it: outer quotes gone, ``\\"`` → ``"``."""
    if len(arg) >= 2 and arg[0] == arg[-1] and arg[0] in "\"'":
        quote = arg[0]
        return arg[1:-1].replace("\\" + quote, quote)
    return arg


def host_of(server_name: str) -> str:
    """``ServerName [scheme://]host[:port]`` → host, lower case."""
    name = server_name.split("://", 1)[-1]
    if name.startswith("["):
        return name[1 : name.find("]")].lower() if "]" in name else name.lower()
    if name.count(":") == 1:
        name = name.split(":", 1)[0]
    return name.lower()


def parse_address(arg: str) -> Address:
    host, port = arg, ""
    if arg.startswith("["):
        end = arg.find("]")
        host, rest = arg[1:end], arg[end + 1 :]
        port = rest[1:] if rest.startswith(":") else ""
    elif arg.count(":") == 1:
        host, port = arg.split(":")
    if host == "_default_":
        host = "*"
    if port in ("", "*"):
        return Address(host.lower(), None)
    if not port.isdigit():
        raise PluginError(f"bad <VirtualHost> address {arg!r}")
    return Address(host.lower(), int(port))


@functools.lru_cache(maxsize=256)
def resolve_host(host: str) -> tuple[str, ...]:
    """A vhost address as Apache takes it: ``*``, an IP (normalised), or a host name
    resolved to all its addresses at read time (none: Apache ignores the address)."""
    if host == "*":
        return ("*",)
    try:
        return (str(ipaddress.ip_address(host)),)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return ()
    return tuple(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos))


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text))


def version_matches(args: Sequence[str], version: tuple[int, ...]) -> bool:
    """``<IfVersion [[!]op] version>`` as mod_version evaluates it."""
    op, want = ("=", args[0]) if len(args) == 1 else (args[0], args[1])
    negate = op.startswith("!")
    op = op.lstrip("!")
    current = ".".join(str(p) for p in version)
    if want.startswith("/") and want.endswith("/") and len(want) > 1:
        op, want = "~", want[1:-1]
    if op == "~":
        result = re.search(want, current) is not None
    else:
        wanted = _version_tuple(want)
        have = version[: len(wanted)] if op in ("=", "==") else version
        pad = wanted + (0,) * (len(have) - len(wanted))
        result = {
            "=": have == wanted,
            "==": have == wanted,
            ">": have > pad,
            ">=": have >= pad,
            "<": have < pad,
            "<=": have <= pad,
        }.get(op, False)
    return result != negate


@dataclass
class _State:
    server_root: str
    modules: set[str]
    defines: dict[str, str]
    env: Mapping[str, str]
    files: list[str] = field(default_factory=list)
    listens: list[Listen] = field(default_factory=list)
    uses: list[Mention] = field(default_factory=list)
    mdomains: list[Mention] = field(default_factory=list)
    raw_vhosts: list[tuple[Node, tuple[Node, ...]]] = field(default_factory=list)
    dormant: list[tuple[Node, str]] = field(default_factory=list)
    main_server_name: str | None = None
    warnings: list[str] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)


class Evaluator:
    """Reads one tree; :meth:`evaluate` may run more than once (files are parsed once)."""

    def __init__(
        self,
        server_root: str,
        *,
        layout: Layout | None = None,
        binary: BinaryInfo = DEFAULT_BINARY,
        env: Mapping[str, str] | None = None,
        defines: Iterable[str] = (),
        reader: AugeasReader | None = None,
    ) -> None:
        self.server_root = os.path.abspath(server_root)
        self.layout = layout or detect_layout(self.server_root)
        self.binary = binary
        self.main_file = os.path.join(self.server_root, self.layout.main_file)
        given = dict(env or {})
        if self.layout.envvars:
            given = read_envvars(os.path.join(self.server_root, self.layout.envvars), given)
        self.env = given
        self.cli_defines = tuple(defines)
        self.reader = reader or AugeasReader()

    def close(self) -> None:
        self.reader.close()

    def evaluate(self, extra_modules: Iterable[str] = ()) -> ApacheConfig:
        modules = set(self.binary.builtin)
        for extra in extra_modules:
            modules |= module_names(extra) if extra.endswith(".c") else {extra}
            if extra.endswith("_module"):
                modules.add("mod_" + extra.removesuffix("_module") + ".c")
        st = _State(
            server_root=self.server_root,
            modules=modules,
            defines={name: "" for name in self.cli_defines},
            env=self.env,
        )
        st.files.append(self.main_file)
        self._walk(self.reader.read(self.main_file), st, "top", 0)
        main, warn = st.main_server_name, st.warnings
        vhosts = tuple(self._vhost(node, body, main, warn) for node, body in st.raw_vhosts)
        dormant = tuple(
            (self._vhost(node, _lexical(node.children or ()), main, []), cond)
            for node, cond in st.dormant
        )
        return ApacheConfig(
            server_root=self.server_root,
            main_file=self.main_file,
            layout=self.layout.name,
            files=tuple(st.files),
            modules=frozenset(st.modules),
            defines=dict(st.defines),
            main_server_name=st.main_server_name,
            vhosts=vhosts,
            dormant=dormant,
            listens=tuple(st.listens),
            uses=tuple(st.uses),
            mdomains=tuple(st.mdomains),
            not_loaded=self._not_loaded(st.files),
            warnings=tuple(dict.fromkeys(st.warnings)),
            top_includes=tuple(dict.fromkeys(st.includes)),
        )

    def waking(self, base: ApacheConfig, modules: Iterable[str]) -> tuple[VirtualHost, ...]:
        """Vhosts that become active if ``modules`` were loaded too (in config order)."""
        active = {(v.file, v.line) for v in base.vhosts}
        woken = self.evaluate(modules)
        return tuple(v for v in woken.vhosts if (v.file, v.line) not in active)

    # -- the walk -------------------------------------------------------------------------
    def _resolve(self, arg: str, st: _State, where: str) -> str:
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name in st.defines:
                return st.defines[name]
            if name in st.env:
                return st.env[name]
            st.warnings.append(f"{where}: config variable ${{{name}}} is not defined")
            return m.group(0)

        return _VAR.sub(sub, unquote(arg)) if "${" in arg else unquote(arg)

    def _args(self, node: Node, st: _State) -> tuple[str, ...]:
        if not any("${" in a or '"' in a or "'" in a for a in node.args):
            return node.args  # nothing to resolve or unquote (the common case)
        return tuple(self._resolve(a, st, node.where) for a in node.args)

    def _condition(self, node: Node, args: tuple[str, ...], st: _State) -> bool:
        kind = node.name.lower()
        if not args:
            raise PluginError(f"{node.where}: <{node.name}> without an argument")
        if kind == "ifversion":
            if self.binary.version is None:
                raise PluginError(f"{node.where}: <IfVersion> needs the Apache binary's version")
            return version_matches(args, self.binary.version)
        first = args[0]
        negate = first.startswith("!")
        name = first[1:] if negate else first
        if kind == "ifmodule":
            result = name in st.modules
        elif kind == "ifdefine":
            result = name in st.defines
        elif kind == "iffile":
            path = name if os.path.isabs(name) else os.path.join(st.server_root, name)
            result = os.path.exists(path)
        else:  # IfDirective / IfSection: what Apache 2.4 core knows; assumed present
            result = True
        return result != negate

    def _walk(self, nodes: Sequence[Node], st: _State, ctx: str, depth: int) -> list[Node]:
        out: list[Node] = []
        for node in nodes:
            kind = node.name.lower()
            needed = module_needed(kind)
            if needed is not None and needed not in st.modules:
                st.warnings.append(
                    f"{node.where}: {node.name} needs {needed}, which is not loaded "
                    "(Apache refuses this configuration)"
                )
            if node.children is not None:
                args = self._args(node, st)
                if kind in CONDITIONS:
                    if self._condition(node, args, st):
                        out.extend(self._walk(node.children, st, ctx, depth))
                    elif ctx == "top":
                        cond = f"{node.name} {' '.join(node.args)}"
                        st.dormant.extend((vh, cond) for vh in _find_vhosts(node.children))
                elif kind == "virtualhost":
                    if ctx != "top":
                        raise PluginError(f"{node.where}: <VirtualHost> inside another section")
                    body = tuple(self._walk(node.children, st, "vhost", depth))
                    st.raw_vhosts.append((Node(node.name, args, node.file, node.line), body))
                    out.append(Node(node.name, args, node.file, node.line, body))
                elif kind in ("macro", "mdomainset"):
                    if kind == "mdomainset":
                        st.mdomains.append(Mention(node.name, args, node.where))
                    out.append(node)
                else:
                    body = tuple(self._walk(node.children, st, "section", depth))
                    out.append(Node(node.name, args, node.file, node.line, body))
                continue
            args = self._args(node, st)
            if kind in ("include", "includeoptional"):
                out.extend(self._include(node, args, st, ctx, depth))
                continue
            if kind == "define" and args:
                st.defines[args[0]] = args[1] if len(args) > 1 else ""
            elif kind == "undefine" and args:
                st.defines.pop(args[0], None)
            elif kind == "loadmodule" and len(args) >= 2:
                self._load_module(node, args, st)
            elif kind == "serverroot" and args and ctx == "top":
                st.server_root = args[0]
            elif kind == "listen" and args and ctx == "top":
                st.listens.append(_listen(args, node.where))
            elif kind == "servername" and args and ctx == "top":
                st.main_server_name = host_of(args[0])
            elif kind == "use":
                st.uses.append(Mention(node.name, args, node.where))
            elif kind == "mdomain":
                st.mdomains.append(Mention(node.name, args, node.where))
            out.append(node if args is node.args else Node(node.name, args, node.file, node.line))
        return out

    def _include(
        self, node: Node, args: tuple[str, ...], st: _State, ctx: str, depth: int
    ) -> list[Node]:
        if depth >= MAX_DEPTH:
            raise PluginError(f"{node.where}: Include nested more than {MAX_DEPTH} deep")
        optional = node.name.lower() == "includeoptional"
        files = expand(args[0], st.server_root, optional=optional, where=node.where)
        if ctx == "top":
            root = args[0] if os.path.isabs(args[0]) else os.path.join(st.server_root, args[0])
            st.includes.append(os.path.normpath(root))
        self.reader.preload(files)
        out: list[Node] = []
        for file in files:
            st.files.append(file)
            out.extend(self._walk(self.reader.read(file), st, ctx, depth + 1))
        return out

    def _load_module(self, node: Node, args: tuple[str, ...], st: _State) -> None:
        ident, path = args[0], args[1]
        if ident in self.binary.builtin:
            st.warnings.append(f"{node.where}: module {ident} is built-in and can't be loaded")
        st.modules.add(ident)
        st.modules |= module_names(os.path.basename(path))

    # -- results ---------------------------------------------------------------------------
    def _vhost(
        self, node: Node, body: Sequence[Node], main: str | None, warnings: list[str]
    ) -> VirtualHost:
        server_name: str | None = None
        aliases: list[str] = []
        ssl = False
        for d in body:
            kind = d.name.lower()
            if kind == "servername" and d.args:
                server_name = host_of(unquote(d.args[0]))
            elif kind == "serveralias":
                aliases.extend(unquote(a).lower() for a in d.args)
            elif kind == "sslengine" and d.args:
                ssl = unquote(d.args[0]).lower() == "on"
        addresses: list[Address] = []
        for arg in node.args:
            try:
                address = parse_address(unquote(arg))
            except PluginError as exc:
                raise PluginError(f"{node.where}: {exc}") from exc
            resolved = resolve_host(address.host)
            if not resolved:
                warnings.append(f"{node.where}: cannot resolve {address.host}: address ignored")
            addresses.extend(Address(host, address.port) for host in resolved)
        return VirtualHost(
            file=node.file,
            line=node.line,
            addresses=tuple(addresses),
            server_name=server_name,
            name=server_name or main,
            aliases=tuple(aliases),
            directives=tuple(body),
            ssl_engine=ssl,
        )

    def _not_loaded(self, files: Sequence[str]) -> tuple[str, ...]:
        if not self.layout.sites_enabled:
            return ()
        sites = os.path.join(self.server_root, self.layout.sites_enabled)
        if not os.path.isdir(sites):
            return ()
        read = {os.path.realpath(f) for f in files}
        return tuple(
            path
            for name in sorted(os.listdir(sites))
            if os.path.isfile(path := os.path.join(sites, name))
            and os.path.realpath(path) not in read
        )


def _find_vhosts(nodes: Iterable[Node]) -> list[Node]:
    found: list[Node] = []
    for node in nodes:
        if node.children is None:
            continue
        if node.name.lower() == "virtualhost":
            found.append(node)
        else:
            found.extend(_find_vhosts(node.children))
    return found


def _lexical(nodes: Iterable[Node]) -> tuple[Node, ...]:
    """A dormant vhost's directives as written, conditions inside it taken as true."""
    out: list[Node] = []
    for node in nodes:
        if node.children is not None and node.name.lower() in CONDITIONS:
            out.extend(_lexical(node.children))
        else:
            out.append(node)
    return tuple(out)


def _listen(args: tuple[str, ...], where: str) -> Listen:
    spec = args[0]
    protocol = args[1] if len(args) > 1 else None
    host: str | None = None
    port = spec
    if spec.startswith("["):
        host, port = spec[1 : spec.find("]")], spec[spec.find("]") + 2 :]
    elif ":" in spec:
        host, port = spec.rsplit(":", 1)
    if not port.isdigit():
        raise PluginError(f"{where}: Listen {spec}: bad port")
    return Listen(host, int(port), protocol, where)


def read_config(
    server_root: str,
    *,
    binary: BinaryInfo = DEFAULT_BINARY,
    env: Mapping[str, str] | None = None,
    layout: Layout | None = None,
) -> ApacheConfig:
    """Read the tree under ``server_root`` once (the common case)."""
    evaluator = Evaluator(server_root, layout=layout, binary=binary, env=env)
    try:
        return evaluator.evaluate()
    finally:
        evaluator.close()
