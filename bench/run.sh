#!/usr/bin/env bash
# Side-by-side load run: wardgate against nginx and HAProxy doing the same TLS proxying, on
# this machine, in one run. One upstream (examples/bench_upstream.rs: a ~1 KB JSON patient
# record for GET, echo for POST) and in front of it, each on its own port with the same ECDSA
# P-256 certificate:
#
#   nginx         TLS proxy, keep-alive to the upstream, no access log
#   haproxy       TLS proxy, connection reuse to the upstream, no log
#   wg-pass       wardgate, a passthrough route (`auth: none`, `audit: none`): TLS,
#                 normalization, routing, metrics
#   wg-full       wardgate, the full pipeline: JWT (EdDSA), casbin, three rate limit policies,
#                 durable audit (committed before the response), 5 fields decrypted per response
#
# Prints one table (requests/s, p50, p99, p99.9, ratio to nginx, the server's CPU time per
# request) for HTTP/1.1 keep-alive (wrk)
# and HTTP/2 (h2load), the latency added over the direct upstream at a paced request rate
# (independent random waits, then the same wait for every connection), wardgate's peak RSS
# with 1,000 connections open (over HTTP/1.1, then HTTP/2), and each target met or missed.
# Each table's rows run in ROUNDS interleaved rounds (all rows once, then again...) and each row
# shows its median round, so a slow spell of the shared machine does not land on one row only,
# and how far its rounds were apart (spread); a target line says so when a figure it compares
# (requests/s, or a passthrough line's p99) was over 20% apart in its rounds.
#
#   bash bench/run.sh [seconds per run] [connections]      (defaults: 10, 50)
#
# Environment: ROUNDS (default 3), RATE (about how many requests/s the paced latency runs send,
# default 2000), PIN=0 (do not pin the proxies to CPU 0 and the load generator and upstream to
# the other CPUs), PGO=0 (measure the plain release build instead of the one deploy/pgo/build.sh
# makes; the upstream is built the same way), WARDGATE_BIN=PATH (measure that binary).
# INSTRUCTIONS=1 counts each wardgate's user-space instructions per request under callgrind,
# over HTTP/1.1 and HTTP/2, instead (deterministic, unlike the timings on a shared machine;
# installs valgrind).
# PROFILE=wg-pass|wg-full samples that gateway with perf during its first HTTP/1.1 run and prints
# the hottest symbols (installs linux-perf).
# Installs nginx, haproxy, wrk and nghttp2-client (h2load) from Debian's packages when missing.
# Traffic stays on 127.0.0.1 (it stops at once if one of its ports is in use); every process
# started is stopped by its PID at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-50}
rate=${RATE:-2000}
rounds=${ROUNDS:-3}

. bench/lib.sh
upstream=127.0.0.1:17080
declare -A port=([nginx]=17441 [haproxy]=17442 [wg-pass]=17443 [wg-full]=17444)
declare -A admin=([wg-pass]=17091 [wg-full]=17092)
ports_free "${upstream##*:}" "${port[@]}" "${admin[@]}"
need nginx nginx
need haproxy haproxy
need h2load nghttp2-client
need openssl openssl
need pgrep procps
[ -z "${PROFILE:-}" ] || need perf linux-perf
prepare bench_upstream
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

dir=$(mktemp -d /tmp/wardgate-bench.XXXXXX)
log="$dir/servers.log"
trap 'stop_all; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT

# CPU 0 serves; the others generate load and run the upstream.
cpus=$(nproc)
if [ "${PIN:-1}" = 1 ] && [ "$cpus" -ge 2 ]; then
  serve=(taskset -c 0)
  load=(taskset -c "1-$((cpus - 1))")
  placement="proxies on CPU 0; load generator and upstream on CPU 1-$((cpus - 1))"
else
  serve=()
  load=()
  placement="not pinned"
fi

# -- One certificate for all: ECDSA P-256, signed by a throwaway CA ---------------------------
(
  cd "$dir"
  p256=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${p256[@]}" -keyout ca-key.pem -out ca.pem -days 2 -subj /CN=wardgate-bench-ca 2>/dev/null
  openssl req "${p256[@]}" -keyout server-key.pem -out server.csr -subj /CN=localhost 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' >ext.cnf
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -extfile ext.cnf -out server.pem 2>/dev/null
  cat server.pem server-key.pem >haproxy.pem
)

# -- The upstream ------------------------------------------------------------------------------
"${load[@]}" "$examples/bench_upstream" "$upstream" 2>>"$log" &
upstream_pid=$!
track $upstream_pid

# -- nginx -------------------------------------------------------------------------------------
mkdir -p "$dir/nginx"
cat >"$dir/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/nginx/body;
  proxy_temp_path $dir/nginx/proxy;
  upstream records { server $upstream; keepalive 256; }
  server {
    listen 127.0.0.1:${port[nginx]} ssl http2;
    ssl_certificate $dir/server.pem;
    ssl_certificate_key $dir/server-key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    keepalive_requests 1000000;
    location / {
      proxy_pass http://records;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
"${serve[@]}" nginx -p "$dir/nginx" -c "$dir/nginx/nginx.conf" 2>>"$log" &
nginx_pid=$!
track $nginx_pid

# -- HAProxy -----------------------------------------------------------------------------------
cat >"$dir/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  http-reuse always
frontend bench
  bind 127.0.0.1:${port[haproxy]} ssl crt $dir/haproxy.pem alpn h2,http/1.1
  default_backend records
backend records
  server records $upstream
EOF
"${serve[@]}" haproxy -db -f "$dir/haproxy.cfg" 2>>"$log" &
haproxy_pid=$!
track $haproxy_pid

# -- wardgate: keys, policy, the two configs ----------------------------------------------------
"$bin" token jwks >"$dir/jwks.json"
"$bin" audit keygen --dir "$dir/audit" >/dev/null
"$bin" keys init --file "$dir/kek-ring.json" >/dev/null
cp policies/model.conf "$dir/model.conf"
cat >"$dir/policy.csv" <<'EOF'
p, patient, self, patient_profile, read
p, patient, self, patient_profile, write
p, patient, self, field:id_number, reveal
p, patient, self, field:phone, reveal
p, patient, self, field:address, reveal
p, patient, self, field:insurance_number, reveal
p, patient, self, field:diagnosis, reveal
EOF

gateway_config() { # name port admin-port
  cat <<EOF
data_dir: data-$1
audit:
  pseudonym_key_file: audit/audit-pseudonym.key
  signing_key_file: audit/audit-signing.pem
server:
  listen: 127.0.0.1:$2
  tls: { cert: server.pem, key: server-key.pem }
admin:
  listen: 127.0.0.1:$3
log:
  level: warn
upstreams:
  records:
    url: http://$upstream
EOF
}

{
  gateway_config pass "${port[wg-pass]}" "${admin[wg-pass]}"
  cat <<'EOF'
routes:
  - name: patient
    path: /api/patients/{patient_id}
    methods: [GET, PUT, POST]
    upstream: records
    auth: none
    audit: none
EOF
} >"$dir/wg-pass.yaml"

{
  gateway_config full "${port[wg-full]}" "${admin[wg-full]}"
  cat <<'EOF'
identity:
  jwt:
    issuer: https://idp.wardgate-demo.invalid
    audiences: [wardgate-demo]
    jwks_file: jwks.json
policy:
  model: model.conf
  policy: policy.csv
field_protection:
  key_ring_file: kek-ring.json
  fields:
    id_number: { redact: mask, keep_last: 4 }
    phone: { redact: partial }
    address: { redact: remove }
    insurance_number: { redact: mask, keep_last: 4 }
    diagnosis: { redact: remove }
# Quotas far above what the run sends: this measures the cost of counting, not of refusing.
rate_limits:
  policies:
    per-ip: { key: client_ip, rate: 10000000/s }
    per-subject: { key: subject, rate: 10000000/s }
    per-patient: { key: subject_patient, rate: 10000000/s }
  default: [per-ip, per-subject, per-patient]
routes:
  - name: patient
    path: /api/patients/{patient_id}
    methods: [GET, PUT, POST]
    upstream: records
    resource: patient_profile
    patient: { from: path, name: patient_id }
    audit: durable
    fields:
      id_number: [$.id_number]
      phone: [$.phone]
      address: [$.address]
      insurance_number: [$.insurance_number]
      diagnosis: [$.diagnosis]
EOF
} >"$dir/wg-full.yaml"

for name in wg-pass wg-full; do
  "$bin" check --config "$dir/$name.yaml" >/dev/null
done
start_run "$dir/wg-pass.yaml" "127.0.0.1:${admin[wg-pass]}" "${serve[@]}"
pass_pid=${pids##* }
start_run "$dir/wg-full.yaml" "127.0.0.1:${admin[wg-full]}" "${serve[@]}"
full_pid=${pids##* }
wait_ready "https://127.0.0.1:${port[nginx]}/api/patients/p-1001" "$nginx_pid"
wait_ready "https://127.0.0.1:${port[haproxy]}/api/patients/p-1001" "$haproxy_pid"
# Whose CPU time each row counts: the server's processes (nginx's master and its worker).
declare -A server=([direct]=$upstream_pid [nginx]="$nginx_pid $(pgrep -P "$nginx_pid" | tr '\n' ' ')"
  [haproxy]=$haproxy_pid [wg-pass]=$pass_pid [wg-full]=$full_pid)

token=$("$bin" token mint --role patient --sub patient-li --patient p-1001 --ttl 2h)
auth="authorization: Bearer $token"
path=/api/patients/p-1001

# The record is written once through the full pipeline: the upstream then holds its five
# protected fields as wg1: ciphertexts, and every proxy serves those same bytes.
plain=$(curl -sf "http://$upstream$path")
curl -sf --cacert "$dir/ca.pem" -X PUT -H "$auth" -H 'content-type: application/json' \
  -d "$plain" "https://localhost:${port[wg-full]}$path" >/dev/null
stored=$(curl -sf "http://$upstream$path")
revealed=$(curl -sf --cacert "$dir/ca.pem" -H "$auth" "https://localhost:${port[wg-full]}$path")
grep -c '"wg1:' <<<"${stored//,/$'\n'}" | { read -r n; [ "$n" = 5 ] || { echo "expected 5 ciphertexts at the upstream, found $n" >&2; exit 1; }; }
[ "$revealed" = "$plain" ] || { echo "wg-full did not reveal the record it stored" >&2; exit 1; }

url() { case $1 in direct) echo "http://$upstream$path" ;; *) echo "https://127.0.0.1:${port[$1]}$path" ;; esac; }

# -- INSTRUCTIONS=1: instructions per request instead of the load runs ---------------------------
# The shared machine's speed swings by 15% from one minute to the next; instruction counts do
# not. Each gateway runs under callgrind twice, for 500 and for 2,500 requests over 10
# connections, over HTTP/1.1 and then over HTTP/2; the difference over the 2,000 extra requests
# is its user-space instructions per request (the kernel's TCP work and the wait on fdatasync
# are not counted). Under valgrind the CPU has no SHA extensions, so SHA-256 (the audit chain,
# the token cache) counts several times what it costs on the real core.
if [ -n "${INSTRUCTIONS:-}" ]; then
  need valgrind valgrind
  kill "$pass_pid" "$full_pid"
  wait "$pass_pid" "$full_pid" 2>/dev/null || true
  instructions() { # NAME REQUESTS H2LOAD-PROTOCOL-OPTION: instructions of a whole run
    local out="$dir/callgrind-$1-$2$3" vg
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" run --config "$dir/$1.yaml" 2>>"$log" &
    vg=$!
    for _ in $(seq 1 240); do curl -sf "http://127.0.0.1:${admin[$1]}/readyz" >/dev/null && break; sleep 0.5; done
    # shellcheck disable=SC2086 # the protocol option is one word or none
    h2load $3 -n "$2" -c 10 -m1 -H "$auth" "$(url "$1")" >/dev/null
    kill "$vg"
    wait "$vg" 2>/dev/null || true
    awk '/^summary:/ {print $2}' "$out"
  }
  per_request() { # NAME H2LOAD-PROTOCOL-OPTION
    local few many
    few=$(instructions "$1" 500 "$2")
    many=$(instructions "$1" 2500 "$2")
    echo $(((many - few) / 2000))
  }
  echo "user-space instructions per request (callgrind; 2,500 against 500 requests, 10 connections)"
  for name in wg-pass wg-full; do
    echo "$name: $(per_request "$name" --h1) over HTTP/1.1, $(per_request "$name" "") over HTTP/2"
  done
  exit 0
fi


# wrk_row NAME: "rps p50 p99 p99.9 errors" (µs)
# With PROFILE=wg-pass or wg-full, that row's first HTTP/1.1 run is also sampled with perf (the
# flat profile, by DSO and symbol, goes to stderr): where its core's time goes.
wrk_row() {
  local profiling=""
  if [ "${PROFILE:-}" = "$1" ] && [ "$round" = 1 ]; then
    local pid=$pass_pid
    [ "$1" = wg-full ] && pid=$full_pid
    perf record -q -F 999 -p "$pid" -o "$dir/perf.data" -- sleep "$seconds" 2>/dev/null &
    profiling=$!
  fi
  "${load[@]}" wrk -t1 -c"$connections" -d"${seconds}s" -s bench/report.lua -H "$auth" "$(url "$1")" \
    | awk '/^RESULT/ {print $2, $3, $4, $5, $6}'
  if [ -n "$profiling" ]; then
    wait "$profiling" || true
    perf report -i "$dir/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null \
      | grep -v '^#' | grep -v '^$' | head -40 >&2 || true # head closes the pipe early
  fi
}

# percentiles LOG: "p50 p99 p99.9" (µs) from an h2load --log-file (time, status, duration).
percentiles() {
  cut -f3 "$1" | sort -n | awk '{v[NR]=$1} END {
    if (NR == 0) { print "0 0 0"; exit }
    i50 = int(NR*0.50); i99 = int(NR*0.99); i999 = int(NR*0.999)
    if (i50 < 1) i50 = 1; if (i99 < 1) i99 = 1; if (i999 < 1) i999 = 1
    print v[i50], v[i99], v[i999] }'
}

# h2load_row NAME [h2load options]: "rps p50 p99 p99.9 errors"
h2load_row() {
  local name=$1 out
  shift
  out=$("${load[@]}" h2load -t1 "$@" -H "$auth" --log-file="$dir/h2load.log" "$(url "$name")" 2>&1)
  local rps errors
  rps=$(awk '/^finished in/ {gsub(",", "", $4); printf "%.0f", $4}' <<<"$out")
  errors=$(awk '/^requests:/ {print $10 + $12 + $14}' <<<"$out")
  non2xx=$(awk '/^status codes:/ {gsub(",", ""); print $5 + $7 + $9}' <<<"$out")
  echo "$rps $(percentiles "$dir/h2load.log") $((errors + non2xx))"
}

ms() { awk -v us="$1" 'BEGIN {printf "%.2f", us / 1000}'; }

# field NAME FIELD ROWS...: field FIELD (2 requests/s, 4 p99 µs) of row NAME.
field() {
  local name=$1 index=$2
  shift 2
  printf '%s\n' "$@" | awk -v name="$name" -v i="$index" '$1 == name {print $i}'
}

# noisy "WHAT SPREAD"...: " (noisy, rounds apart: WHAT N%, ...)" naming each figure whose rounds'
# spread is over 20%, nothing when none is: a verdict on such figures may flip on a rerun.
noisy() {
  printf '%s\n' "$@" | awk '{s = $NF; sub("%", "", s)} s != "-" && s + 0 > 20 {out = out ", " $0}
    END {if (out != "") printf " (noisy, rounds apart:%s)", substr(out, 2)}'
}

# table TITLE ROWS...: each row "name rps p50 p99 p99.9 errors cpu spread [p99-spread]".
table() {
  local title=$1 nginx_rps
  shift
  nginx_rps=$(field nginx 2 "$@")
  echo
  echo "$title"
  printf '| %-8s | %10s | %8s | %8s | %8s | %8s | %10s | %6s | %6s |\n' "" "requests/s" "p50 ms" "p99 ms" "p99.9 ms" "vs nginx" "CPU µs/req" "errors" "spread"
  printf '| %-8s | %10s | %8s | %8s | %8s | %8s | %10s | %6s | %6s |\n' "---" "---" "---" "---" "---" "---" "---" "---" "---"
  local row name rps p50 p99 p999 errors cpu spread
  for row in "$@"; do
    read -r name rps p50 p99 p999 errors cpu spread _ <<<"$row"
    printf '| %-8s | %10s | %8s | %8s | %8s | %8s | %10s | %6s | %6s |\n' "$name" "$rps" "$(ms "$p50")" "$(ms "$p99")" "$(ms "$p999")" \
      "$(awk -v a="$rps" -v b="$nginx_rps" 'BEGIN {printf "%.2f", a / b}')" "$cpu" "$errors" "$spread"
  done
}

echo "wardgate side-by-side: ${seconds}s per run, $connections connections, $cpus CPUs ($placement)"
echo "GET $path, a $(wc -c <<<"$stored") byte record with 5 wg1: fields; wg-full reveals them for the patient"
echo "wardgate: $bin, $build"
echo "CPU µs/req: the server's CPU time (user and system, all its threads and processes) per request in that round; direct's is the upstream's"
echo "spread: how far a row's rounds were apart, (highest - lowest) / median, in what its table is sorted by"

# spread KEY: how far the rounds on stdin (one per line) were apart in field KEY, as
# (highest - lowest) / median, "-" for a single round.
spread() {
  sort -n -k"$1" | awk -v key="$1" -v mid=$(((rounds + 1) / 2)) '
    NR == 1 {low = $key}
    NR == mid {median = $key}
    {high = $key}
    END {print (NR > 1 && median > 0) ? sprintf("%.0f%%", 100 * (high - low) / median) : "-"}'
}

# cpu_ticks PID...: the processes' CPU time so far (user and system, all their threads), in
# clock ticks: fields 14 and 15 of /proc/PID/stat, counted after the `(name)` that may hold spaces.
cpu_ticks() {
  local pid files=()
  for pid in "$@"; do files+=("/proc/$pid/stat"); done
  awk '{sub(/.*\) /, ""); total += $12 + $13} END {print total + 0}' "${files[@]}"
}
hz=$(getconf CLK_TCK)

# measured MEASURE NAME: `MEASURE NAME`'s row with the server's CPU time per request (µs)
# appended: the CPU its processes used over the run, over the requests the run completed. On a
# saturated core about the inverse of requests/s, but it does not fall when the load generator
# falls behind: what a request costs the server, not only how many it got.
measured() {
  local before after row rps
  # shellcheck disable=SC2086 # a list of PIDs
  before=$(cpu_ticks ${server[$2]})
  row=$("$1" "$2")
  # shellcheck disable=SC2086
  after=$(cpu_ticks ${server[$2]})
  read -r rps _ <<<"$row"
  echo "$row $(awk -v ticks=$((after - before)) -v hz="$hz" -v n=$((rps * seconds)) \
    'BEGIN {printf "%.1f", (n > 0 ? ticks / hz * 1e6 / n : 0)}')"
}

# run_rounds KEY MEASURE NAMES...: runs `MEASURE name` for every name, ROUNDS times interleaved,
# and sets `rows` to each name's median round by field KEY (2: requests/s, 4: p99), its CPU
# time per request appended (field 7), then the rounds' spread in field KEY, then their spread
# in p99 (field 4; the same when KEY is 4): a target compares p99s too.
run_rounds() {
  local key=$1 measure=$2 name round all
  shift 2
  declare -A runs=()
  for ((round = 1; round <= rounds; round++)); do
    for name in "$@"; do runs[$name]+="$name $(measured "$measure" "$name")"$'\n'; done
  done
  rows=()
  for name in "$@"; do
    all=${runs[$name]%$'\n'}
    rows+=("$(sort -n -k"$key" <<<"$all" | sed -n "$(((rounds + 1) / 2))p") $(spread "$key" <<<"$all") $(spread 4 <<<"$all")")
  done
}
h2_row() { h2load_row "$1" -c"$connections" -m1 -D"$seconds"; }

median="median of $rounds rounds"
run_rounds 2 wrk_row direct nginx haproxy wg-pass wg-full
table "HTTP/1.1 keep-alive (wrk -t1 -c$connections), $median by requests/s" "${rows[@]}"
h1_rows=("${rows[@]}")

run_rounds 2 h2_row nginx haproxy wg-pass wg-full
table "HTTP/2 (h2load -t1 -c$connections -m1), $median by requests/s" "${rows[@]}"
h2_rows=("${rows[@]}")

# Latency at a pace far below every proxy's capacity, so it is the added work that shows and
# not a queue: each connection waits a while after each response, on average
# connections x 1000 / RATE ms. First with independent random waits (users who do not know
# about each other), then with the same fixed wait for every connection, which keeps
# connections answered together in step (a burst of 50 every cycle).
pause=$((connections * 1000 / rate))
paced_row() {
  "${load[@]}" wrk -t1 -c"$connections" -d"${seconds}s" -s bench/paced.lua -H "$auth" "$(url "$1")" -- "$pause" "$pacing" \
    | awk '/^RESULT/ {print $2, $3, $4, $5, $6}'
}
# added_p99 WHAT: prints wg-full's p99 over the direct upstream's in the last table, and keeps
# it (µs) in `added`.
added_p99() {
  added=$(($(field wg-full 4 "${rows[@]}") - $(field direct 4 "${rows[@]}")))
  echo "added p99 of wg-full over direct ($1): $(ms "$added") ms"
}
pacing=independent
run_rounds 4 paced_row direct nginx wg-pass wg-full
table "Paced, independent: $connections HTTP/1.1 connections, each waiting a random time (exponential, mean ${pause} ms) between requests (about $rate requests/s), $median by p99" "${rows[@]}"
added_p99 "independent waits"
added_independent=$added
added_noise=$(noisy "direct $(field direct 8 "${rows[@]}")" "wg-full $(field wg-full 8 "${rows[@]}")")
pacing=in-step
run_rounds 4 paced_row direct nginx wg-pass wg-full
table "Paced, in step: the same connections, each waiting exactly ${pause} ms between requests, $median by p99" "${rows[@]}"
added_p99 "in-step waits"

# Peak RSS with 1,000 connections open and busy on the full pipeline: over HTTP/1.1 (wrk) on the
# gateway that ran all of the above, then over HTTP/2 (h2load) on a fresh process of the same
# config and data (VmHWM only ever grows, so the second figure needs a process of its own).
# Each lasts at least 10 s: opening 1,000 TLS connections takes the load generator a second or
# more, and a peak read before they are all busy would flatter the figure.
busy_seconds=$((seconds < 10 ? 10 : seconds))
"${load[@]}" wrk -t1 -c1000 -d"${busy_seconds}s" -s bench/report.lua -H "$auth" "$(url wg-full)" >"$dir/wrk-1000.txt"
read -r _ rps_1000 _ _ _ errors_1000 _ < <(grep "^RESULT" "$dir/wrk-1000.txt")
peak_kb=$(awk '/VmHWM/ {print $2}' "/proc/$full_pid/status")
stop "$full_pid"
start_run "$dir/wg-full.yaml" "127.0.0.1:${admin[wg-full]}" "${serve[@]}"
full_pid=${pids##* }
read -r rps_1000_h2 _ _ _ errors_1000_h2 < <(h2load_row wg-full -c1000 -m1 -D"$busy_seconds")
peak_h2_kb=$(awk '/VmHWM/ {print $2}' "/proc/$full_pid/status")
mb() { awk -v kb="$1" 'BEGIN {printf "%.1f MB", kb / 1024}'; }
echo
echo "wg-full with 1,000 connections, HTTP/1.1 (wrk): ${rps_1000} requests/s, ${errors_1000} errors; peak RSS $(mb "$peak_kb")"
echo "wg-full with 1,000 connections, HTTP/2 (h2load -m1, a fresh process): ${rps_1000_h2} requests/s, ${errors_1000_h2} errors; peak RSS $(mb "$peak_h2_kb")"
echo "wg-pass peak RSS over the run: $(mb "$(awk '/VmHWM/ {print $2}' "/proc/$pass_pid/status")")"

# The targets wardgate is held to on a 2-core machine, each against this run's figures.
# ratio_target WHAT ROWS...: wg-pass at least nginx's requests/s with a p99 no worse, and
# wg-full at least 0.8 of nginx's requests/s.
ratio_target() {
  local what=$1 nginx_rps nginx_p99 nginx_cpu pass_rps pass_p99 pass_cpu full_rps full_cpu pass_noise full_noise
  shift
  nginx_rps=$(field nginx 2 "$@") nginx_p99=$(field nginx 4 "$@") nginx_cpu=$(field nginx 7 "$@")
  pass_rps=$(field wg-pass 2 "$@") pass_p99=$(field wg-pass 4 "$@") pass_cpu=$(field wg-pass 7 "$@")
  full_rps=$(field wg-full 2 "$@") full_cpu=$(field wg-full 7 "$@")
  pass_noise=$(noisy "nginx $(field nginx 8 "$@")" "wg-pass $(field wg-pass 8 "$@")" \
    "nginx's p99 $(field nginx 9 "$@")" "wg-pass's p99 $(field wg-pass 9 "$@")")
  full_noise=$(noisy "nginx $(field nginx 8 "$@")" "wg-full $(field wg-full 8 "$@")")
  awk -v what="$what" -v n="$nginx_rps" -v np="$nginx_p99" -v nc="$nginx_cpu" -v p="$pass_rps" -v pp="$pass_p99" \
    -v pc="$pass_cpu" -v f="$full_rps" -v fc="$full_cpu" -v pass_noise="$pass_noise" -v full_noise="$full_noise" 'BEGIN {
    verdict = (p >= n && pp <= np) ? "met" : "missed"
    printf "  passthrough, %-9s %.2f of nginx, p99 %.2f against %.2f ms (at least 1.00, p99 no worse): %s%s; CPU a request %.1f against %.1f µs\n", what ":", p / n, pp / 1000, np / 1000, verdict, pass_noise, pc, nc
    printf "  full pipeline, %-9s %.2f of nginx (at least 0.80): %s%s; CPU a request %.1f against %.1f µs\n", what ":", f / n, (f >= 0.8 * n) ? "met" : "missed", full_noise, fc, nc }'
}
echo
echo "Targets (2-core machine), against this run"
ratio_target "HTTP/1.1" "${h1_rows[@]}"
ratio_target "HTTP/2" "${h2_rows[@]}"
# A peak read while no request completed, or while some failed, says little of 1,000 busy
# connections: the line says so instead of a bare verdict.
awk -v us="$added_independent" -v added_noise="$added_noise" -v h1="$peak_kb" -v h2="$peak_h2_kb" \
  -v h1_rps="$rps_1000" -v h1_errors="$errors_1000" -v h2_rps="$rps_1000_h2" -v h2_errors="$errors_1000_h2" '
  function rss(protocol, kb, rps, errors, verdict) {
    verdict = (kb < 64 * 1024) ? "met" : "missed"
    if (rps == 0) verdict = "not measured, no request completed"
    else if (errors > 0) verdict = verdict " (with " errors " errors)"
    printf "  peak RSS, wg-full at 1,000 connections, %s %.1f MB (under 64 MB): %s\n", protocol, kb / 1024, verdict
  }
  BEGIN {
    printf "  added p99 of the full pipeline, independent waits: %.2f ms (under 2 ms): %s%s\n", us / 1000, (us < 2000) ? "met" : "missed", added_noise
    rss("HTTP/1.1:", h1, h1_rps, h1_errors)
    rss("HTTP/2:  ", h2, h2_rps, h2_errors)
  }'
