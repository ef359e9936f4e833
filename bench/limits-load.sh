#!/usr/bin/env bash
# Load run: the rate limiter's cost. The demo (release build) runs without rate limits; a
# second gateway runs the demo's config plus three policies on every route (per address, per
# subject, per subject and patient) and the enumeration detector, with quotas high enough that
# nothing is refused, so what differs is the counting. A third has one policy per address at
# one request a minute, so all but the first request are refused with 429: what a flood that
# the limits stop costs. wrk reads a patient's records through each, one after the other.
# Then a forged token (another token's signature on a patient's claims) through the second,
# where every one is checked and refused 401, and through the third, where the address is over
# its quota and each is refused 429 before its signature is checked.
# Prints the five wrk summaries and what each gateway counted.
#
#   bash bench/limits-load.sh [seconds] [connections]
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

# variant NAME PORT ADMIN_PORT: the demo's config on other ports and a data directory of its
# own, the YAML on standard input appended; started, and ready when this returns.
variant() {
  sed -e "s/127.0.0.1:18443/127.0.0.1:$2/" -e "s/127.0.0.1:19090/127.0.0.1:$3/" \
      -e "s/^data_dir: .*/data_dir: data-$1/" "$config" >"$dir/$1.yaml"
  cat >>"$dir/$1.yaml"
  start_run "$dir/$1.yaml" "127.0.0.1:$3"
}

variant limited 28443 29090 <<'YAML'
rate_limits:
  policies:
    per-ip: { key: client_ip, rate: 1000000/s }
    per-subject: { key: subject, rate: 1000000/s }
    per-patient: { key: subject_patient, rate: 1000000/s }
  default: [per-ip, per-subject, per-patient]
enumeration:
  window: 10m
  max_patients: { default: 1000 }
YAML

variant refusing 38443 39090 <<'YAML'
rate_limits:
  policies:
    per-ip: { key: client_ip, rate: 1/min }
  default: [per-ip]
YAML

token=$("$bin" token mint --role patient --sub patient-li --patient p-1001 --ttl 1h)
other=$("$bin" token mint --role patient --sub patient-wu --patient p-1002 --ttl 1h)
forged="${token%.*}.${other##*.}"
for run in "rate limits off:18443:$token" "rate limits on (3 policies + enumeration):28443:$token" \
  "over quota, every request but the first refused (1 policy):38443:$token" \
  "forged tokens within quota, every signature checked (3 policies + enumeration):28443:$forged" \
  "forged tokens from an address over quota, refused before the signature (1 policy):38443:$forged"; do
  IFS=: read -r name port bearer <<<"$run"
  echo; echo "== $name: wrk ${seconds}s, ${connections} connections, GET /api/patients/p-1001/records"
  wrk -t2 -c"$connections" -d"${seconds}s" --latency -H "authorization: Bearer $bearer" \
    "https://127.0.0.1:$port/api/patients/p-1001/records" | sed -n '1,16p'
done
for admin in 29090 39090; do
  echo; echo "== rate limited and signatures refused, as counted by the gateway on admin port $admin"
  curl -s "http://127.0.0.1:$admin/metrics" |
    grep -E '^wardgate_(rate_limited_total|authn_failures_total\{reason="bad_signature"\})' ||
    echo "(nothing was rate limited or refused)"
done
