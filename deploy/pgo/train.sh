#!/usr/bin/env bash
# The training run of the profile-guided build (deploy/pgo/build.sh): drives an instrumented
# wardgate with a mix of the demo's traffic, so that the compiler learns which code is hot.
#
#   bash deploy/pgo/train.sh INSTRUMENTED-BINARY [seconds per load run, default 5]
#
# The demo (`wardgate demo`: its consultation backend, certificates, keys and tokens) starts
# first; the instrumented binary then runs the demo's config with what the demo leaves out
# added: three rate limit policies, the enumeration watch, a route with no audit record
# (`audit: none`). wrk sends the request mix of requests.lua over HTTP/1.1 (public, patients'
# own records, masked fields for a receptionist, doctors' and nurses' department reads,
# refusals, a PUT and a POST whose fields are encrypted, no token, a path with dot segments),
# then h2load sends reads over HTTP/2. The profile is written when the binary exits.
# Uses bench/lib.sh's helpers; installs wrk and h2load from Debian's packages when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
instrumented=$1
seconds=${2:-5}

. bench/lib.sh
bin=$instrumented
need wrk wrk
need h2load nghttp2-client
need curl curl
log=$(mktemp) # the gateways' stderr, shown when one fails to start
trap 'stop_all; rm -f "$log"' EXIT
start_demo # the demo's backend on 18081; its own gateway stays idle
ports_free 18444 19091

# The demo's config on other ports and its own data directory, with the parts it lacks.
train="$dir/train.yaml"
sed -e 's/^data_dir: data$/data_dir: data-train/' \
    -e 's/127\.0\.0\.1:18443/127.0.0.1:18444/; s/127\.0\.0\.1:19090/127.0.0.1:19091/' \
    -e 's/^\(  *\)auth: none$/&\n\1audit: none/' \
    -e 's/^routes:$/rate_limits:\
  policies:\
    per-ip: { key: client_ip, rate: 10000000\/s }\
    per-subject: { key: subject, rate: 10000000\/s }\
    per-patient: { key: subject_patient, rate: 10000000\/s }\
  default: [per-ip, per-subject, per-patient]\
enumeration:\
  window: 10m\
  max_patients: { default: 100000 }\
routes:/' "$config" >"$train"
if ! grep -q '^rate_limits:' "$train" || ! grep -q 'audit: none' "$train"; then
  echo "the demo's config changed: $train lacks the training's additions" >&2
  exit 1
fi
"$instrumented" check --config "$train" >/dev/null
"$instrumented" run --config "$train" 2>>"$log" &
gateway=$!
track $gateway
wait_ready http://127.0.0.1:19091/readyz $gateway

mint() { "$bin" token mint --ttl 1h "$@"; }
PATIENT_TOKEN=$(mint --role patient --sub patient-li --patient p-1001)
DOCTOR_TOKEN=$(mint --role doctor --sub dr-wang --department cardiology)
NURSE_TOKEN=$(mint --role nurse --sub nurse-zhao --department cardiology)
RECEPTIONIST_TOKEN=$(mint --role receptionist --sub desk-chen)
export PATIENT_TOKEN DOCTOR_TOKEN NURSE_TOKEN RECEPTIONIST_TOKEN

base=https://127.0.0.1:18444
echo "training over HTTP/1.1 (wrk, ${seconds}s)"
wrk -t1 -c32 -d"${seconds}s" -s deploy/pgo/requests.lua "$base/" | grep -E 'Requests/sec|Non-2xx'
echo "training over HTTP/2 (h2load, ${seconds}s)"
h2load -t1 -c32 -m1 -D"$seconds" -H "authorization: Bearer $PATIENT_TOKEN" \
  "$base/api/patients/p-1001/records" "$base/api/patients/p-1001" "$base/api/hospital/info" \
  | grep -E 'finished in|status codes'
h2load -t1 -c32 -m4 -D"$seconds" -H "authorization: Bearer $DOCTOR_TOKEN" \
  "$base/api/departments/cardiology/patients/p-1001/records" \
  | grep -E 'finished in|status codes'
stop $gateway # the profile is written as it exits
