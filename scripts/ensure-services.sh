#!/usr/bin/env bash
# Make sure the server binaries the tests start for themselves exist: PostgreSQL (a
# throwaway cluster per run), Redis (shared rate-limit counters), nginx (the production shape), and the curl and jq
# the README's examples use (tests/test_readme.py runs them); `chromium` (Debian's, driven
# by Playwright in tests/panel/test_browser.py) and `npm` (the panel's assets) are asked for
# by the Makefile as extra tools. Installs Debian's
# packages where missing; never leaves the system services running.
set -euo pipefail
need=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null || need+=(postgresql)
command -v redis-server > /dev/null || need+=(redis-server)
command -v curl > /dev/null || need+=(curl)
command -v jq > /dev/null || need+=(jq)
# nginx: the production-shape test (tests/ops/test_production_shape.py) runs Debian's nginx
# as a plain process with a config in a temporary directory, in front of two web processes.
command -v nginx > /dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
# Extra tools on demand, as TOOL or TOOL:PACKAGE when the Debian package is named
# otherwise, e.g. `ensure-services.sh wrk pgbench:postgresql`.
for spec in "$@"; do
  tool=${spec%%:*}
  command -v "$tool" > /dev/null || compgen -G "/usr/lib/postgresql/*/bin/$tool" > /dev/null \
    || need+=("${spec#*:}")
done
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing with apt: ${need[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${need[@]}" > /dev/null
# Debian starts the packaged services on install; the tests run their own.
$SUDO service postgresql stop > /dev/null 2>&1 || true
$SUDO service redis-server stop > /dev/null 2>&1 || true
$SUDO service nginx stop > /dev/null 2>&1 || true
