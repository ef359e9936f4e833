#!/usr/bin/env bash
# Load run through the gateway with the audit trail in durable mode: the demo (release build)
# serves a patient's records, every request is authorized and its audit record committed
# before the response. Prints wrk's figures, the audit records written, and `audit verify`.
#
#   bash bench/audit-load.sh [seconds] [connections]
#
# Installs wrk from Debian's packages when it is missing. Traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
connections=${2:-64}

. bench/lib.sh
prepare
start_demo
port_proxy=18443 port_admin=19090
token=$("$bin" token mint --role patient --sub patient-li --patient p-1001 --ttl 1h)

echo "wrk: ${seconds}s, ${connections} connections, 2 threads, GET /api/patients/p-1001/records (durable audit)"
wrk -t2 -c"$connections" -d"${seconds}s" --latency \
    -H "authorization: Bearer $token" \
    "https://127.0.0.1:$port_proxy/api/patients/p-1001/records" | sed -n '1,20p'

curl -s "http://127.0.0.1:$port_admin/metrics" | grep -E '^wardgate_audit_(records_total|write_errors_total|chain_head_seq)' || true
"$bin" audit verify --config "$config"
