#!/usr/bin/env bash
# Make sure PostgreSQL server binaries exist (the tests start their own throwaway server
# from them). Installs Debian's package where missing; never starts the system cluster.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null; then
  exit 0
fi
echo "PostgreSQL server binaries missing: installing them with apt" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq postgresql postgresql-contrib > /dev/null
# Debian starts a cluster on install; the tests do not need it.
$SUDO service postgresql stop > /dev/null 2>&1 || true
compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null
