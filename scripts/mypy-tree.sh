#!/usr/bin/env bash
# Type-check the packages under the names they install as (certwright.core, ...).
# The source folders are mapped into a namespace package through a tree of symlinks.
set -euo pipefail
venv=${1:-.venv}
tree=.mypy_tree/certwright
mkdir -p "$tree"
for d in core installers authenticators; do ln -sfn "../../$d" "$tree/$d"; done
MYPYPATH=.mypy_tree "$venv/bin/mypy" --no-error-summary \
    -p certwright.core -p certwright.authenticators -p certwright.installers
