"""Entry point: parse, set up logging, dispatch to a verb, turn errors into one line."""

from __future__ import annotations

import atexit
import gc
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from certwright.core.errors import CertwrightError
from certwright.core.settings import Settings

if TYPE_CHECKING:
    from certwright.core.cli_parser import CommandParser

log = logging.getLogger("certwright")
SECRET_OPTIONS = frozenset({"--eab-hmac-key"})
"""Options whose value is a secret; also any option whose name says so (see is_secret)."""
_SECRET_WORDS = ("hmac", "secret", "password", "passphrase", "api-token", "api-key")
MASK = "********"


def is_secret(option: str) -> bool:
    name = option.split("=", 1)[0].lower()
    return name in SECRET_OPTIONS or (name.startswith("--")
                                      and any(w in name for w in _SECRET_WORDS))


def masked(args: Sequence[str]) -> list[str]:
    """The command line as it may be logged: secret option values replaced by a mask."""
    out: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next:
            out.append(MASK)
            hide_next = False
        elif arg.startswith("--") and is_secret(arg):
            if "=" in arg:
                out.append(arg.split("=", 1)[0] + "=" + MASK)
            else:
                out.append(arg)
                hide_next = True
        else:
            out.append(arg)
    return out


class _Redact(logging.Filter):
    """Defence in depth: a secret value that reaches a log record anyway is masked."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if any(s in text for s in self.secrets):
            for secret in self.secrets:
                text = text.replace(secret, MASK)
            record.msg, record.args = text, None
        return True


def _secret_values(config: Settings) -> list[str]:
    return [str(value) for dest, value in config.options().items()
            if value and isinstance(value, str) and is_secret("--" + dest.replace("_", "-"))]


def _say_to(config: Settings) -> Callable[[str], None]:
    def say(text: str) -> None:
        log.info("%s", text, extra={"said": True})  # for the log file; printed below
        if not config.quiet:
            print(text, flush=True)

    return say


def _ask(config: Settings) -> Callable[[str], str] | None:
    if config.noninteractive or not (sys.stdin.isatty() or config.force_interactive):
        return None
    return input


def setup_logging(config: Settings) -> None:
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    redact = _Redact(_secret_values(config))
    console = logging.StreamHandler(sys.stderr)
    console.addFilter(redact)
    console.setLevel(logging.ERROR if config.quiet else  # -q: errors only, as Certbot
                     logging.DEBUG if config.verbose >= 2 else
                     logging.INFO if config.verbose == 1 else logging.WARNING)
    console.setFormatter(logging.Formatter("%(message)s"))
    console.addFilter(lambda record: not getattr(record, "said", False))
    root.addHandler(console)
    from certwright.core.storage.files import ensure_dir

    logs = Path(config.logs_dir)
    try:
        ensure_dir(logs, 0o700)  # new parents too: mkdir(parents=True) gives them the umask's
        path = logs / "certwright.log"
        if config.max_log_backups > 0 and _not_empty(path):
            rotate_log(path, config.max_log_backups)
        handler = _LogFile(path)
        os.chmod(path, 0o600)
    except (OSError, CertwrightError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else exc
        log.warning("not logging to %s: %s", logs, reason)
        return
    handler.setLevel(logging.DEBUG)
    handler.addFilter(redact)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    logging.getLogger("urllib3").setLevel(logging.INFO)


def _not_empty(path: Path) -> bool:
    try:
        return os.stat(path).st_size > 0
    except FileNotFoundError:
        return False


def rotate_log(path: Path, backups: int) -> None:
    """Start a new log as Certbot does on every run: ``log.N`` becomes ``log.N+1`` for
    each N below ``backups`` (``log.<backups>`` is overwritten), then ``log`` becomes
    ``log.1`` (what ``RotatingFileHandler.doRollover`` does, from one directory listing
    instead of a stat per possible backup: 1,000 by default)."""
    prefix = path.name + "."
    numbers = []
    for name in os.listdir(path.parent):
        suffix = name[len(prefix):]
        if name.startswith(prefix) and suffix.isdigit() and str(int(suffix)) == suffix:
            numbers.append(int(suffix))
    for number in sorted(numbers, reverse=True):
        if 1 <= number < backups:
            os.replace(path.with_name(f"{prefix}{number}"),
                       path.with_name(f"{prefix}{number + 1}"))
    os.replace(path, path.with_name(f"{prefix}1"))


class _LogFile(logging.FileHandler):
    """A log file that can't be written (a full disk) is said once, in one line, instead
    of a traceback per record; the command goes on and reports its own errors."""

    said = False

    def handleError(self, record: logging.LogRecord) -> None:
        if not self.said:
            self.said = True
            exc = sys.exc_info()[1]
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            print(f"Warning: can't write the log {self.baseFilename}: {reason}",
                  file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    collecting = gc.isenabled()
    gc.disable()  # during start-up only: see commands.started
    try:
        return _main(args)
    except CertwrightError as exc:
        log.debug("error", exc_info=True)
        if _DEBUG:
            traceback.print_exc()
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    finally:
        (gc.enable if collecting else gc.disable)()  # as the caller had it


def _main(args: list[str]) -> int:
    if args[:1] == ["fleet"]:  # its own command line: sync / status / schema
        from certwright.core.fleet.cli import main as fleet_main

        return fleet_main(args[1:])
    from certwright.core import cli_parser

    if _wants_short_help(args):
        print(cli_parser.USAGE, end="")
        return 0
    from certwright.core import commands

    try:  # most verbs need no plugin: try without loading any
        if not _may_need_no_plugin(args):  # no word names such a verb: skip the try
            raise cli_parser.NeedPlugins()
        parser = cli_parser.build_parser(partial=True)
        config = cli_parser.parse(args, parser)
        if config.help is not None or config.verb in PLUGIN_VERBS:
            raise cli_parser.NeedPlugins()
    except cli_parser.NeedPlugins:
        try:  # only the plugins the command line names (as Certbot users pick them)
            if "-h" in args or "--help" in args:
                raise cli_parser.NeedPlugins() from None
            parser = cli_parser.build_parser(_named_plugins(args), partial=True)
            config = cli_parser.parse(args, parser)
        except cli_parser.NeedPlugins:  # an option of some other plugin: load them all
            parser = _full_parser()
            config = cli_parser.parse(args, parser)
    if config.help is not None:
        print(commands.help_text(parser, config.help or config.verb or ""), end="")
        return 0
    _DEBUG[:] = [True] if config.debug else []
    from certwright.core.hooks import validate_hooks

    validate_hooks(config)  # before any account, order or hook
    setup_logging(config)
    log.debug("certwright %s", " ".join(masked(args)))
    for text in config.ini_warnings:  # cli.ini lines skipped: said once, never fatal
        log.warning("Warning: %s", text)
    for text in config.notices:  # obsolete options: accepted, said once
        log.warning("Note: %s", text)
    from certwright.core.checkpoint import signals_raise

    try:
        with signals_raise():  # SIGTERM/SIGHUP unwind like Ctrl-C: temporary changes undone
            return commands.dispatch(config, _say_to(config), _ask(config))
    except CertwrightError:
        raise
    except OSError as exc:
        log.debug("OS error", exc_info=True)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"Error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        log.exception("unexpected error")
        if config.debug:
            traceback.print_exc()
        print(f"Error: unexpected {type(exc).__name__}: {exc} (details in "
              f"{config.logs_dir}/certwright.log)", file=sys.stderr)
        return 1


# --debug: errors come with their traceback (set once the command line is parsed)
_DEBUG: list[bool] = []
PLUGIN_VERBS = frozenset({"run", "certonly", "install", "enhance", "reconfigure", None})


def _may_need_no_plugin(args: list[str]) -> bool:
    """Whether some word could be a verb that needs no plugin (``renew``, ``certificates``
    …). When none is, the verb is ``run``, ``certonly``, ``install`` or ``enhance``, and the
    parser with plugins (a superset) is the only one worth building."""
    from certwright.core.cli_parser import ALIASES, VERBS

    return any(ALIASES.get(arg, arg) in VERBS and ALIASES.get(arg, arg) not in PLUGIN_VERBS
               for arg in args)


def _named_plugins(args: list[str]) -> list[type]:
    """Classes of the plugins chosen on the command line (-a, -i, --NAME shortcuts)."""
    from certwright.core import plugins

    shortcuts = plugins.names()
    names: set[str] = set()
    for i, arg in enumerate(args):
        key, _, value = arg.partition("=")
        if key in ("-a", "--authenticator", "-i", "--installer", "--configurator"):
            given = value or (args[i + 1] if i + 1 < len(args) else "")
            names.update(given.split(","))  # -i postfix,dovecot: both add their options
        elif key.startswith("--") and key[2:] in shortcuts:
            names.add(key[2:])
        elif key.startswith("--dns-"):  # --dns-NAME[-credentials|-propagation-seconds]
            names.add(key[2:].removesuffix("-credentials").removesuffix(
                "-propagation-seconds"))
    return plugins.classes_named(names)


def _full_parser() -> CommandParser:
    from certwright.core import cli_parser, plugins

    found = plugins.discover(plugins.AUTHENTICATORS) + plugins.discover(plugins.INSTALLERS)
    parser = cli_parser.build_parser([p.cls for p in found if p.cls])
    # the options of a plugin that can't load are explained, not "unrecognized"
    parser.unavailable = {p.name: p.error for p in found if p.cls is None and p.error}
    return parser


def _wants_short_help(args: list[str]) -> bool:
    """Plain ``--help``: print the summary without loading any plugin."""
    return args in (["-h"], ["--help"])


def console() -> None:
    """The ``certwright`` command: :func:`main`, then an exit without the interpreter's
    teardown.

    Once the command is done, what is left is freeing every object of every module one by
    one (7-13 ms, about 8% of a certificate's CPU). So, when no other thread runs (one that
    does is waited for, as usual) and no tracer or profiler is set (``coverage run`` and
    ``python -m cProfile`` save their data after the program ends), the output is flushed,
    every ``atexit`` handler runs (the log's flush and close among them), and the process
    ends with its exit status at once. A library caller of :func:`main` keeps the usual
    exit."""
    try:
        code = main()
    except SystemExit as exc:  # argparse's --version and usage errors end this way
        if exc.code is not None and not isinstance(exc.code, int):
            raise
        code = exc.code or 0
    if threading.active_count() > 1 or sys.gettrace() or sys.getprofile():
        sys.exit(code)  # a thread to wait for, or a tracer (coverage run, cProfile) to save
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # a full disk, a closed pipe: exit 120, as Python's own exit does
            code = 120
        except ValueError:  # closed already
            pass
    atexit._run_exitfuncs()  # what the interpreter would run before its teardown
    os._exit(code)


if __name__ == "__main__":
    console()
