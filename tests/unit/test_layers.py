"""Nothing below the verbs imports upward: the protocol (``core/acme``) and the store
(``core/storage``) import only themselves and the errors; services and contracts never
import a verb (``core/verbs``) or a face (the command line, the library ``api``); verbs
never import a face. Checked on the source, lazy imports included."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "core"
PACKAGE = "certwright.core"
FACE = {"cli", "cli_parser", "cli_ini", "commands", "account_verbs", "api",
        "fleet.cli"}  # `certwright fleet`'s own command line
VERBS = {"verbs",  # core/verbs: issue, renew, manage, install, redeploy, preflight
         "fleet"}  # the fleet package: a verb of its own (its cli is face)
# the package itself (its __version__), the error types, and the leaf utilities that import
# nothing of certwright's (polling with backoff, the clock)
BASE = {"", "errors", "poll", "clock"}


def _module(path: Path) -> str:
    parts = path.relative_to(CORE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The core modules ``path`` imports, relative to ``certwright.core`` ("" for it)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == PACKAGE:  # from certwright.core import issue, __version__
                names = [f"{PACKAGE}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                rel = name.removeprefix(PACKAGE).removeprefix(".")
                found.add("" if rel == "__version__" else rel)
    return found


def _top(rel: str) -> str:
    return rel.split(".", 1)[0]


def violations() -> list[str]:
    found = []
    for path in sorted(CORE.rglob("*.py")):
        mod = _module(path)
        layer = mod if mod in FACE else _top(mod)
        for rel in sorted(imports_of(path)):
            top = _top(rel)
            if layer in ("acme", "storage"):
                ok = top == layer or rel in BASE
            elif layer in FACE:
                ok = True
            elif layer in VERBS:
                ok = top not in FACE
            else:  # services and contracts
                ok = top not in FACE and top not in VERBS
            if not ok:
                found.append(f"{mod or '__init__'} imports {rel}")
    return found


def test_nothing_below_the_verbs_imports_upward() -> None:
    assert violations() == []


def test_the_base_utilities_import_nothing_of_certwrights() -> None:
    for name in BASE - {""}:
        assert imports_of(CORE / f"{name}.py") == set(), name


def test_the_walk_sees_lazy_and_package_imports(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text("def f():\n    from certwright.core import issue, __version__\n"
                      "    import certwright.core.cli_parser\n"
                      "from certwright.core.acme.errors import AcmeError\n")
    assert imports_of(source) == {"issue", "", "cli_parser", "acme.errors"}


def test_the_layers_show_in_the_tree() -> None:
    """The verbs live under ``core/verbs`` (none left beside the services), and every
    module there is a verb by the rule above."""
    verbs = {p.stem for p in (CORE / "verbs").glob("*.py")} - {"__init__"}
    assert {"issue", "renew", "manage", "install", "redeploy", "preflight"} <= verbs
    assert not verbs & {p.stem for p in CORE.glob("*.py")}


def test_a_service_importing_a_verb_or_the_library_is_caught(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text("from certwright.core.verbs import issue\n"
                      "from certwright.core import api\n")
    assert {_top(rel) for rel in imports_of(source)} == {"verbs", "api"}
    assert all(_top(rel) in FACE | VERBS for rel in imports_of(source))

