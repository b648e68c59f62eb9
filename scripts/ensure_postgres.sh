#!/usr/bin/env bash
# Make sure the PostgreSQL named by TEST_DATABASE_URL's host answers; start the local
# cluster if it does not. Exits non-zero when it still does not answer: the Postgres pass
# of the test suite must fail, not skip, without a server.
set -euo pipefail
host=${PGHOST_CHECK:-127.0.0.1}
port=${PGPORT_CHECK:-5432}
if pg_isready -q -h "$host" -p "$port" 2>/dev/null; then
  exit 0
fi
echo "PostgreSQL on $host:$port does not answer; starting the local cluster" >&2
if command -v pg_ctlcluster >/dev/null 2>&1; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
fi
for _ in $(seq 1 30); do
  pg_isready -q -h "$host" -p "$port" 2>/dev/null && exit 0
  sleep 1
done
echo "PostgreSQL on $host:$port is unreachable: the Postgres tests cannot run" >&2
exit 1
