#!/usr/bin/env bash
# Headless Chromium for the report test, which renders figs/report.html in a real browser: installs the Debian
# package `chromium` when it is missing (as root, with apt). `make test` runs it.
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium is missing: install the Debian package \`chromium\` (the report test renders the page with it)" >&2
    exit 1
fi
install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; }
install || { apt-get update -q >/dev/null 2>&1; install; }
command -v chromium >/dev/null
