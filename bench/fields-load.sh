#!/usr/bin/env bash
# Load run: the gateway's throughput with field rules on versus off, same backend, same data.
# The demo (release build) runs with its field rules; a second gateway runs the demo's config
# with every route's `fields:` removed (and its own ports and data directory). A patient's
# profile is written once through the first, so the backend holds two wg1: ciphertexts; then
# wrk reads it through each: with rules, both are decrypted and revealed; without, the
# ciphertexts pass through as they are. Everything else (TLS, JWT, policy, durable audit) is
# the same. Prints both wrk summaries.
#
#   bash bench/fields-load.sh [seconds] [connections]
#
# Installs wrk from Debian's packages when it is missing. Traffic stays on 127.0.0.1; both
# processes are stopped by PID at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-15}
connections=${2:-64}

. bench/lib.sh
prepare
start_demo

# The same config without field rules, on other ports, with its own state.
awk '/^    fields:/ {skip=1; next} skip && /^      / {next} {skip=0; print}' "$config" \
  | sed -e 's/127.0.0.1:18443/127.0.0.1:28443/' -e 's/127.0.0.1:19090/127.0.0.1:29090/' \
        -e 's/^data_dir: .*/data_dir: data-no-fields/' >"$dir/no-fields.yaml"
start_run "$dir/no-fields.yaml" 127.0.0.1:29090

token=$("$bin" token mint --role patient --sub patient-li --patient p-1001 --ttl 1h)
curl -sf --cacert "$dir/ca.pem" -X PUT -H "authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"id_number":"110101199003071234","phone":"13812345678"}' \
  https://localhost:18443/api/patients/p-1001 >/dev/null
echo "stored at the backend:"; curl -s http://127.0.0.1:18081/debug/raw-store/patients/p-1001; echo

for run in "field rules on:18443" "field rules off:28443"; do
  echo; echo "== ${run%%:*}: wrk ${seconds}s, ${connections} connections, GET /api/patients/p-1001"
  wrk -t2 -c"$connections" -d"${seconds}s" --latency -H "authorization: Bearer $token" \
    "https://127.0.0.1:${run##*:}/api/patients/p-1001" | sed -n '1,16p'
done
