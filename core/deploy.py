"""Plan → apply → config test → commit → reload → verify, with rollback on any failure.

Verification is a TLS handshake with SNI to each endpoint the installer names, comparing
the served certificate with the one just installed; it polls with a bounded backoff
instead of sleeping a fixed time after the reload.
"""

from __future__ import annotations

import difflib
import logging
import os
import ssl
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from certwright.core import probe
from certwright.core.errors import CertwrightError, PluginError
from certwright.core.installer_types import SYMLINK, ChangePlan, Endpoint
from certwright.core.interfaces import Installer, SupportsActivate
from certwright.core.poll import poll_until
from certwright.core.transaction import Transaction

log = logging.getLogger(__name__)
Say = Callable[[str], None]
VERIFY_TIMEOUT = 10.0


class DeployError(CertwrightError):
    """A deploy step failed; the previous configuration was restored."""


def plan_diff(plan: ChangePlan) -> str:
    """The plan as a unified diff (what ``--dry-run`` prints). Symlinks are shown as
    their targets; a secret file's content is never shown."""
    out: list[str] = []
    for change in plan.changes:
        path = Path(change.path)
        if change.kind == SYMLINK:
            before = os.readlink(path) if path.is_symlink() else None
            out.append(f"symlink {path}: {before or '(none)'} -> "
                       f"{change.link_target or '(removed)'}\n")
            continue
        if change.secret:
            size = "removed" if change.new_content is None else \
                f"{len(change.new_content)} bytes, 0600"
            out.append(f"secret file {path}: content not shown ({size})\n")
            continue
        try:
            old = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            old = ""
        new = (change.new_content or b"").decode("utf-8", errors="replace")
        out += difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True),
            fromfile=str(path) if change.expected_sha256 else "/dev/null",
            tofile=str(path) if change.new_content is not None else "/dev/null")
    return "".join(out)


def served_certificate(endpoint: Endpoint, timeout: float = 2.0) -> bytes:
    """DER of the certificate served at ``endpoint`` for its SNI name, over its protocol."""
    return probe.served_certificate(endpoint.host, endpoint.port, endpoint.server_name,
                                    endpoint.protocol, timeout)


def verify(endpoints: Sequence[Endpoint], expected_der: bytes,
           timeout: float = VERIFY_TIMEOUT) -> None:
    """Wait (bounded) until every endpoint serves ``expected_der``."""
    deadline = time.monotonic() + timeout
    for endpoint in endpoints:
        last = ["no answer"]

        def serves(endpoint: Endpoint = endpoint, last: list[str] = last) -> bool | None:
            try:
                if served_certificate(endpoint) == expected_der:
                    return True
                last[0] = "it still serves another certificate"
            except (OSError, ssl.SSLError) as exc:
                last[0] = str(exc) or type(exc).__name__
            return None

        if not poll_until(serves, deadline=deadline, first=0.02, maximum=0.5):
            over = "" if endpoint.protocol == "https" else f", {endpoint.protocol}"
            raise DeployError(f"{endpoint.host}:{endpoint.port} (SNI {endpoint.server_name}"
                              f"{over}) does not serve the new certificate: {last[0]}")


def apply_plan(installer: Installer, plan: ChangePlan, *, work_dir: Path, say: Say,
               endpoints: Sequence[Endpoint] = (), expected_der: bytes | None = None,
               dry_run: bool = False) -> None:
    """Run the whole pipeline; on failure roll back, reload the old config and say which
    step failed."""
    if dry_run:
        diff = plan_diff(plan)
        say(diff if diff else f"{plan.title}: no configuration changes needed")
        return
    txn = stage(installer, plan, work_dir=work_dir)
    _go_live_verified(installer, [plan], [txn], endpoints, expected_der, say)


def apply_with(installer: Installer, plan: ChangePlan, follow: Callable[[], ChangePlan], *,
               work_dir: Path, say: Say, endpoints: Sequence[Endpoint] = (),
               expected_der: bytes | None = None) -> CertwrightError | OSError | None:
    """``plan``, then the plan ``follow`` makes on top of it (enhancements planned on the
    deployed files), live with one reload: each is applied and config tested in turn, then
    the server reloads once and the endpoints are verified.

    When ``follow`` fails (planning it, or its config test: its own change is rolled
    back), ``plan`` goes live alone and that failure is returned for the caller to report
    after saying the deploy worked. A failure of the reload or of the verification rolls
    both back and raises :class:`DeployError`, as :func:`apply_plan` does."""
    first = stage(installer, plan, work_dir=work_dir)
    try:
        second = follow()
        second_txn = stage(installer, second, work_dir=work_dir)
    except (CertwrightError, OSError) as exc:
        _go_live_verified(installer, [plan], [first], endpoints, expected_der, say)
        return exc
    except BaseException:  # nothing was loaded yet: the files go back as they were
        _undo(installer, [first], "config test")
        raise
    _go_live_verified(installer, [plan, second], [second_txn, first], endpoints,
                      expected_der, say)
    return None


def _go_live_verified(installer: Installer, plans: Sequence[ChangePlan],
                      txns: Sequence[Transaction | None], endpoints: Sequence[Endpoint],
                      expected_der: bytes | None, say: Say) -> None:
    """Make the staged ``plans`` live and verify; on any failure roll ``txns`` back (the
    newest first), reload the old config and raise :class:`DeployError` naming the step
    (another exception, a plugin's bug or Ctrl-C, is raised as it is once rolled back)."""
    step = "reload"
    try:
        go_live(installer, plans)
        if expected_der is not None and endpoints:
            step = "verify"
            verify(endpoints, expected_der)
    except BaseException as exc:  # a plugin's bug or Ctrl-C must not leave the change live
        restored = _undo(installer, txns, step)
        what = "; the previous configuration was restored" if restored else ""
        if not isinstance(exc, (CertwrightError, OSError)):
            log.error("%s: %s interrupted by %s%s", plans[0].title, step,
                      type(exc).__name__, what)
            raise
        raise DeployError(f"{plans[0].title}: {step} failed: {exc}{what}") from None
    for done in plans:
        for note in done.notes:
            say(note)


def stage(installer: Installer, plan: ChangePlan, *, work_dir: Path, test: bool = True
          ) -> Transaction | None:
    """Apply ``plan``, config test, commit, without making it live (see :func:`go_live`);
    on failure roll back and raise DeployError saying which step failed. None for an
    empty plan. ``test=False`` leaves the config test to the caller (one test for many
    staged plans), who rolls back what fails it."""
    if plan.empty:
        return None
    txn = Transaction(work_dir, plan.title, installer=installer.name,
                      installer_params=dict(installer.renewal_params()))
    step = "apply"
    try:
        txn.apply(plan)
        step = "config test"
        if test:
            installer.config_test()
        txn.commit()
    except BaseException as exc:
        restored = _undo(installer, [txn], "config test")  # nothing was loaded yet
        what = "; the previous configuration was restored" if restored else ""
        if not isinstance(exc, (CertwrightError, OSError)):
            log.error("%s: %s interrupted by %s%s", plan.title, step, type(exc).__name__, what)
            raise
        if step == "config test" and _fails_anyway(installer):
            what += (f" (it fails the same test without this change: fix the "
                     f"{installer.name} configuration first)")
        raise DeployError(f"{plan.title}: {step} failed: {exc}{what}") from None
    return txn


def go_live(installer: Installer, plans: Sequence[ChangePlan]) -> None:
    """Make committed ``plans`` live: through the installer's ``activate`` for each when
    it has one (no reload), falling back to one reload if any activation raises; else one
    reload for all."""
    if isinstance(installer, SupportsActivate):
        try:
            for plan in plans:
                installer.activate(plan)
            return
        except Exception as exc:
            log.warning("%s: activating %s failed (%s); reloading instead", installer.name,
                        plan.title, _describe(exc))
    installer.reload()


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, CertwrightError) else f"{type(exc).__name__}: {exc}"


def _undo(installer: Installer, txns: Sequence[Transaction | None], step: str) -> list[str]:
    """Roll the transactions back, in the order given (the newest first) and, when the
    server may have loaded the change, reload the restored configuration. Returns the
    paths restored."""
    restored = [path for txn in txns if txn is not None and txn.manifest.files
                for path in txn.rollback()]
    if restored and step != "config test":
        try:
            installer.reload()
        except Exception as again:  # the first failure is the one to report
            log.error("reloading the restored configuration failed: %s", again)
    return restored


def _fails_anyway(installer: Installer) -> bool:
    """Whether the configuration as it was before the change fails the test too."""
    try:
        installer.config_test()
    except CertwrightError:
        return True
    return False


def expected_certificate(cert_path: str) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        pem = Path(cert_path).read_bytes()
        return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    except (OSError, ValueError) as exc:
        raise PluginError(f"{cert_path}: can't read the certificate to install: {exc}") from None
