#!/usr/bin/env bash
# The Python black-box suite: the real `ckanapi` client, `rdflib` and headless Debian Chromium
# (through chromedriver and Selenium) against real `lien` daemons on 127.0.0.1.
#
# Installs what it needs: chromium + chromium-driver with apt-get when missing (as root; else it
# says what to install and fails), a virtualenv under target/py-venv with the pinned PyPI
# packages of requirements.txt. Then builds the `lien` binary and runs pytest; the daemons are
# started by the tests' fixtures (conftest.py). Nothing is skipped: a missing tool is an error.
# Artefacts (daemon logs, screenshots) go to target/test-artifacts.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "error: the browser test needs Debian's chromium and chromium-driver: sudo apt-get install -y chromium chromium-driver" >&2
        exit 1
    fi
fi

VENV=target/py-venv
if [ ! -x "$VENV/bin/python" ]; then
    if ! python3 -m venv "$VENV"; then
        if [ "$(id -u)" = 0 ]; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            python3 -m venv "$VENV"
        else
            echo "error: python3 -m venv failed: install python3-venv" >&2
            exit 1
        fi
    fi
fi
"$VENV/bin/pip" install -q --disable-pip-version-check -r tests/python/requirements.txt

cargo build -p lien --locked
# Respect a relocated target folder (CARGO_TARGET_DIR), as cargo does.
export LIEN_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/lien"
export LIEN_TEST_ARTIFACTS="$PWD/target/test-artifacts"
exec "$VENV/bin/python" -m pytest tests/python -q -p no:cacheprovider -W ignore::DeprecationWarning "$@"
