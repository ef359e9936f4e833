#!/usr/bin/env bash
# The full pipeline (TLS, JWT, policy, durable audit per request) on the embedded SQLite
# stores next to the same on a shared PostgreSQL store (`shared_store`): the demo's config,
# a throwaway PostgreSQL cluster on loopback (Debian's, without TLS: loopback only), wrk on
# the same route through each. Prints wrk's figures for both and `audit verify` of the
# shared store.
#
#   bash bench/shared-load.sh [seconds] [connections]
#
# Installs wrk and postgresql from Debian's packages when they are missing. PostgreSQL runs as
# the `postgres` user when this runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-64}

. bench/lib.sh
prepare
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
}
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_postgres() {
  if [ "$(id -u)" = 0 ]; then
    setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
  else
    "$@"
  fi
}

start_demo
pgdir=$(mktemp -d)
[ "$(id -u)" = 0 ] && chown postgres "$pgdir"
as_postgres "$pgbin/initdb" --auth=trust --username=wardgate --no-sync -D "$pgdir/data" >/dev/null
as_postgres "$pgbin/postgres" -D "$pgdir/data" -p 25433 -k "$pgdir" -c listen_addresses=127.0.0.1 \
  >"$pgdir/server.log" 2>&1 &
track $!
for _ in $(seq 1 100); do "$pgbin/pg_isready" -q -h 127.0.0.1 -p 25433 && break; sleep 0.1; done

echo "postgresql://wardgate@127.0.0.1:25433/postgres?sslmode=disable" >"$dir/postgres-url"
shared="$dir/shared.yaml"
sed -e 's/127.0.0.1:18443/127.0.0.1:18444/' -e 's/127.0.0.1:19090/127.0.0.1:19091/' \
  -e 's/^data_dir: data$/data_dir: data-shared/' "$config" >"$shared"
printf 'shared_store:\n  postgres:\n    url_file: postgres-url\n' >>"$shared"
start_run "$shared" 127.0.0.1:19091

token=$("$bin" token mint --role patient --sub patient-li --patient p-1001 --ttl 1h)
for store in "embedded 18443" "shared 18444"; do
  set -- $store
  echo "== $1 stores: wrk ${seconds}s, ${connections} connections, 2 threads, GET /api/patients/p-1001/records"
  wrk -t2 -c"$connections" -d"${seconds}s" --latency \
      -H "authorization: Bearer $token" \
      "https://127.0.0.1:$2/api/patients/p-1001/records" | sed -n '3,12p'
done
"$bin" audit verify --config "$shared"
rm -rf "$pgdir"
