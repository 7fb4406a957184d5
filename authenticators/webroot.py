"""webroot: answer http-01 by writing token files into a running web server's document root.

Options (Certbot's names and meanings):

``-w PATH`` / ``--webroot-path PATH`` (dest ``webroot_path``, a list)
    A document root. Each ``-w`` applies to the ``-d`` domains that follow it on the command
    line, up to the next ``-w``. Domains given before the first ``-w`` take the last ``-w``
    (allowed only when there is a single ``-w``, as in Certbot).
``--webroot-map JSON`` (dest ``webroot_map``, a dict domain -> path)
    ``{"example.com,www.example.com": "/var/www/example"}``; keys may list several domains
    separated by commas. Every domain named here is also added to ``config.domains``
    (it implies ``-d``). Later ``--webroot-map`` options are merged over earlier ones.

How the order of ``-w`` and ``-d`` is kept: argparse calls actions in command-line order.
:class:`WebrootPathAction` handles ``-w``; the core's ``-d`` action appends its new domains to
``config.domains`` (a list) and then calls :func:`assign_webroot` with them, which maps each
one to the latest ``-w`` in ``config.webroot_map`` unless it is mapped already. Both must be
options of the same parser (argument groups are fine; subparsers are not, since a subparser
fills a namespace of its own).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from certwright.core.errors import PluginError, StorageError
from certwright.core.http01 import (
    ACME_CHALLENGE,
    WELL_KNOWN,
    http01_token,
    http01_types,
)
from certwright.core.names import name_key
from certwright.core.settings import Settings
from certwright.core.storage.files import atomic_write

if TYPE_CHECKING:
    from certwright.core.interfaces import AddArgument, ChallengeTask, Identifier

logger = logging.getLogger(__name__)



class _RootSession:
    """The directories certwright created under one web root, shared by every instance
    using that root at the same time (parallel renewals may share a web root): whichever
    cleans up last removes what was created. It lives as long as an instance holds it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.created: list[str] = []  # outermost first


# root -> its session while some instance uses it; weak, so nothing outlives the instances
_SESSIONS: weakref.WeakValueDictionary[str, _RootSession] = weakref.WeakValueDictionary()
_SESSIONS_LOCK = threading.Lock()


def _session_for(root: str) -> _RootSession:
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(root)
        if session is None:
            session = _RootSession()
            _SESSIONS[root] = session
        return session

_MAP_EXAMPLE = '{"example.com,www.example.com": "/var/www/example"}'


def _norm_domain(domain: str) -> str:
    """Map keys are names as the CA sees them: ``Example.ORG.`` and ``bücher.example``
    are ``example.org`` and ``xn--bcher-kva.example``, as in the challenge tasks."""
    return name_key(domain)


def _abspath(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def _as_list(value: object) -> list[str]:
    """A list option as given on the command line, or as read back from a renewal conf."""
    if not value:
        return []
    if isinstance(value, str):
        return [v for v in (part.strip() for part in value.split(",")) if v]
    if isinstance(value, Iterable):
        return [str(v) for v in value]
    return [str(value)]


def _namespace_domains(namespace: argparse.Namespace | Settings) -> list[str]:
    return [_norm_domain(d) for d in _as_list(getattr(namespace, "domains", None))]


def assign_webroot(namespace: argparse.Namespace, domains: Iterable[str]) -> None:
    """Map each of ``domains`` (just added by ``-d``) to the latest ``-w``, unless mapped.

    The core's ``-d`` action calls this after appending to ``namespace.domains``. It does
    nothing while no ``-w`` has been seen, so it is safe to call whatever the authenticator.
    """
    paths = _as_list(getattr(namespace, "webroot_path", None))
    if not paths:
        return
    mapping = dict(getattr(namespace, "webroot_map", None) or {})
    for domain in domains:
        mapping.setdefault(_norm_domain(domain), paths[-1])
    namespace.webroot_map = mapping


class WebrootPathAction(argparse.Action):
    """``-w PATH``: append an absolute document root to ``namespace.webroot_path``.

    Its errors (and ``--webroot-map``'s) are PluginErrors, exit code 1, as in Certbot
    (whose webroot actions raise its own errors, not the argument parser's).

    With several ``-w``, a domain given before the first one is ambiguous; Certbot refuses
    it, and so does this action (domains after a ``-w`` are mapped by :func:`assign_webroot`,
    so an unmapped domain seen at a second ``-w`` must have come before the first).
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        if not isinstance(values, str) or not values.strip():
            raise PluginError(f"{option_string}: expected a directory")
        paths = _as_list(getattr(namespace, self.dest, None))
        if paths:
            mapped = {_norm_domain(k) for k in getattr(namespace, "webroot_map", None) or {}}
            early = [d for d in _namespace_domains(namespace) if d not in mapped]
            if early:
                raise PluginError(
                    f"{early[0]} is given before the first -w; with several -w, "
                    "give each -w before the -d domains it serves"
                )
        paths.append(_abspath(values))
        setattr(namespace, self.dest, paths)


class WebrootMapAction(argparse.Action):
    """``--webroot-map JSON``: merge ``{"a.example,b.example": "/path"}`` into the map."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        import json

        try:
            data = json.loads(values if isinstance(values, str) else "")
        except ValueError as exc:
            raise PluginError(f"--webroot-map: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise PluginError(f"--webroot-map: expected a JSON object like {_MAP_EXAMPLE}")
        mapping = dict(getattr(namespace, self.dest, None) or {})
        domains = list(getattr(namespace, "domains", None) or [])
        for key, path in data.items():
            for name in (_norm_domain(part) for part in key.split(",")):
                if not name:
                    continue
                mapping[name] = _abspath(path)
                if name not in (_norm_domain(d) for d in domains):
                    domains.append(name)
        setattr(namespace, self.dest, mapping)
        namespace.domains = domains


class WebrootAuthenticator:
    """Writes ``<root>/.well-known/acme-challenge/<token>`` for a web server to serve."""

    name: ClassVar[str] = "webroot"
    description: ClassVar[str] = "Place files in a running web server's document root (http-01)"

    def __init__(self, config: Settings) -> None:
        self.config = config
        self._paths = [_abspath(p) for p in _as_list(getattr(config, "webroot_path", None))]
        given: Mapping[str, str] = getattr(config, "webroot_map", None) or {}
        self._map = {_norm_domain(k): _abspath(str(v)) for k, v in given.items()}
        # task -> (root, token file) for every task present() got as far as a root for
        self._tasks: dict[ChallengeTask, tuple[str, str]] = {}
        # root -> the session shared with other instances using it, held while in use
        self._sessions: dict[str, _RootSession] = {}

    @classmethod
    def add_arguments(cls, add: AddArgument) -> None:
        add(
            "-w",
            "--webroot-path",
            action=WebrootPathAction,
            dest="webroot_path",
            default=None,
            metavar="WEBROOT_PATH",
            help="public_html / webroot path; applies to the -d domains that follow it, "
            "and can be given several times (default: ask)",
        )
        add(
            "--webroot-map",
            action=WebrootMapAction,
            dest="webroot_map",
            default=None,
            metavar="JSON",
            help=f"JSON object mapping domains to webroot paths, e.g. {_MAP_EXAMPLE}; "
            "implies -d for each domain",
        )

    # -- checks ------------------------------------------------------------------------

    def prepare(self) -> None:
        for root in sorted(set(self._paths) | set(self._map.values())):
            if not os.path.isdir(root):
                raise PluginError(f"webroot {root} does not exist or is not a directory")
        for domain in _namespace_domains(self.config):
            if not domain.startswith("*."):
                self._root_for(domain)

    def challenge_types(self, identifier: Identifier) -> Sequence[str]:
        return http01_types(identifier)

    def _root_for(self, domain: str) -> str:
        domain = _norm_domain(domain)
        root = self._map.get(domain) or (self._paths[-1] if self._paths else None)
        if root is None:
            root = self._ask_root(domain)
        self._map[domain] = root
        return root

    def _ask_root(self, domain: str) -> str:
        missing = f"no webroot for {domain}: give -w before -d or use --webroot-map"
        if getattr(self.config, "noninteractive", False):
            raise PluginError(missing)
        print(f"Input the webroot (document root) for {domain}: ", end="", flush=True)
        answer = sys.stdin.readline().strip()
        if not answer:
            raise PluginError(missing)
        root = _abspath(answer)
        if not os.path.isdir(root):
            raise PluginError(f"webroot {root} does not exist or is not a directory")
        return root

    # -- challenge files ---------------------------------------------------------------

    def present(self, task: ChallengeTask) -> None:
        token = http01_token(task, self.name)
        root = self._root_for(task.domain)
        challenge_dir = os.path.join(root, WELL_KNOWN, ACME_CHALLENGE)
        target = os.path.join(challenge_dir, token)
        self._tasks[task] = (root, target)
        for attempt in range(3):
            self._make_dirs(root)
            try:
                atomic_write(Path(target), task.key_authorization.encode(), 0o644,
                             durable=False)  # the CA reads it within seconds, or never
                break
            except StorageError as exc:
                # another renewal sharing this web root may have just removed the empty
                # challenge directory it had made: make it again and retry
                if attempt == 2 or os.path.isdir(challenge_dir):
                    raise PluginError(str(exc)) from None
        logger.debug("wrote http-01 token for %s to %s", task.domain, target)

    def _make_dirs(self, root: str) -> None:
        """Create ``.well-known/acme-challenge`` under ``root`` (0755), remembering each new one."""
        try:
            owner = os.stat(root)
        except OSError as exc:
            raise PluginError(f"webroot {root}: {exc.strerror}") from None
        session = self._sessions.get(root) or self._sessions.setdefault(root, _session_for(root))
        with session.lock:
            self._make_dirs_locked(root, owner, session.created)

    def _make_dirs_locked(self, root: str, owner: os.stat_result, created: list[str]) -> None:
        path = root
        for part in (WELL_KNOWN, ACME_CHALLENGE):
            path = os.path.join(path, part)
            try:
                os.mkdir(path, 0o755)
            except FileExistsError:
                if not os.path.isdir(path):
                    raise PluginError(f"{path} exists and is not a directory") from None
                continue
            except OSError as exc:
                raise PluginError(
                    f"cannot create {path} in webroot {root}: {exc.strerror}"
                ) from None
            created.append(path)
            os.chmod(path, 0o755)  # mkdir's mode is cut by the umask; www-data must traverse
            _copy_owner(path, owner)

    def cleanup(self, task: ChallengeTask) -> None:
        entry = self._tasks.pop(task, None)
        if entry is None:
            return
        root, target = entry
        try:
            os.unlink(target)
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.warning("could not remove http-01 token file %s: %s", target, exc.strerror)
        session = self._sessions.get(root)
        if session is None:
            return
        with session.lock:
            created = session.created
            while created:
                try:
                    os.rmdir(created[-1])
                except OSError:
                    break  # still holds other tokens (or files of others): leave it
                created.pop()
        if not any(r == root for r, _ in self._tasks.values()):
            del self._sessions[root]  # this instance is done with the root

    def renewal_params(self) -> Mapping[str, object]:
        for domain in _namespace_domains(self.config):
            if self._paths and not domain.startswith("*."):
                self._map.setdefault(domain, self._paths[-1])
        params: dict[str, object] = {}
        if self._paths:
            params["webroot_path"] = list(self._paths)
        if self._map:
            params["webroot_map"] = dict(self._map)
        return params


def _copy_owner(path: str, like: os.stat_result) -> None:
    """Give ``path`` the webroot's owner when running as root (best effort)."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        with contextlib.suppress(OSError):
            os.chown(path, like.st_uid, like.st_gid)
