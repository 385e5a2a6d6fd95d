#!/usr/bin/env bash
# Servers that the test suite starts by itself besides PostgreSQL's own binaries: pgbouncer
# (Debian's package), for the transaction-mode pooler tests. Idempotent and quiet: installs
# only what is missing, and refreshes the package lists only when the install needs it.
set -euo pipefail
if command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "pgbouncer is missing and cannot be installed here: apt-get install pgbouncer" >&2
  exit 0  # the pooler tests fail and say so; everything else runs
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq pgbouncer >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  apt-get install -y -qq pgbouncer >/dev/null
fi
