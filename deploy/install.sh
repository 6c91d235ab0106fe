#!/bin/sh
# The container image's install steps, in one place: the Dockerfile runs them, and so does
# tests/test_install_path.py (no Docker daemon there), so the two cannot drift apart.
#
#   install.sh wheel REPO OUT    build the project's wheel from the checkout REPO into OUT
#   install.sh venv WHEELS VENV  a fresh venv VENV with that wheel and the PostgreSQL driver
set -eu

usage() {
    echo "usage: install.sh wheel REPO OUT | install.sh venv WHEELS VENV" >&2
    exit 2
}

[ $# -eq 3 ] || usage
step=$1
src=$2
dest=$3
python=${PYTHON:-python3}

case "$step" in
wheel)
    # Build from a copy of the files that make the package, never in the checkout itself: a
    # build/ folder left from an older build would slip files deleted since into the wheel.
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    for path in pyproject.toml setup.py setup.cfg MANIFEST.in README.md LICENSE alerts channels templates; do
        if [ -e "$src/$path" ]; then
            cp -R "$src/$path" "$work/"
        fi
    done
    find "$work" -name __pycache__ -prune -exec rm -rf {} +
    "$python" -m pip wheel --quiet --no-deps --wheel-dir "$dest" "$work"
    ;;
venv)
    set -- "$src"/urgent_alerts-*.whl
    if [ $# -ne 1 ] || [ ! -f "$1" ]; then
        echo "install.sh: expected exactly one urgent_alerts wheel in $src" >&2
        exit 2
    fi
    "$python" -m venv "$dest"
    "$dest/bin/pip" install --quiet "$1[postgres]"
    "$dest/bin/alerts" --version
    ;;
*)
    usage
    ;;
esac
