# Shared by the load scripts: installs missing tools from Debian's packages, builds the release
# binary, starts `wardgate demo` or `wardgate run` on fixed loopback ports, and stops every
# process started (by its PID) on exit. After `start_demo`: $bin, $config (the demo's config)
# and $dir (its folder) are set. `track PID` has another process stopped too; `stop PID` stops one
# of them early.

bin=target/release/wardgate
pids=""

track() { pids="$pids $1"; }

# stop PID: stops one tracked process now, and no longer tracks it (its PID may be reused).
stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  pids=" $pids "
  pids=${pids/ $1 / }
}

stop_all() {
  # shellcheck disable=SC2086
  [ -n "${pids// /}" ] && { kill $pids 2>/dev/null || true; wait $pids 2>/dev/null || true; }
  pids=""
}
trap stop_all EXIT

# ports_free PORT...: fails, naming them, when something already listens on any of these
# loopback ports (an earlier run still going, another service): its load would go there.
ports_free() {
  local port busy=""
  for port in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then busy="$busy $port"; fi
  done
  [ -z "$busy" ] && return 0
  echo "in use on 127.0.0.1:$busy. Stop what listens there (an earlier run still going?) and run again." >&2
  return 1
}

# need COMMAND PACKAGE...: installs the packages when the command is missing.
need() {
  local command=$1
  shift
  command -v "$command" >/dev/null && return
  [ -n "${apt_updated:-}" ] || { apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# prepare [EXAMPLE...]: installs wrk and curl, and builds the binary the load runs measure, with
# the examples named: the release build optimized with a profile (deploy/pgo/build.sh, the build
# bench/README.md's figures are of), or with PGO=0, or when that build fails (it says why), the
# plain `cargo build --release`. Sets $bin, $examples (their folder) and $build (which build
# $bin is); WARDGATE_BIN=PATH then runs that binary instead of the one built.
prepare() {
  need wrk wrk
  need curl curl
  local wanted=() name built=""
  for name in "$@"; do wanted+=(--example "$name"); done
  if [ "${PGO:-1}" != 0 ] && ! built=$(bash deploy/pgo/build.sh "${wanted[@]}"); then
    echo "the profile-guided build failed (above): measuring the plain release build" >&2
    built=""
  fi
  if [ -n "$built" ]; then
    bin=${built##*$'\n'}
    build="the release build optimized with a profile (deploy/pgo/build.sh)"
  else
    cargo build --release --quiet --bin wardgate "${wanted[@]}"
    bin=target/release/wardgate
    build="the plain release build (PGO=0, or the profile-guided build failed)"
  fi
  examples=$(dirname "$bin")/examples
  if [ -n "${WARDGATE_BIN:-}" ]; then
    bin=$WARDGATE_BIN
    build="WARDGATE_BIN"
  fi
}

start_demo() {
  local out
  ports_free 18443 19090 18081
  out=$(mktemp)
  "$bin" demo --listen 127.0.0.1:18443 --admin 127.0.0.1:19090 --backend 127.0.0.1:18081 >"$out" 2>/dev/null &
  track $!
  for _ in $(seq 1 100); do grep -q "Press Ctrl-C" "$out" && break; sleep 0.1; done
  config=$(grep -o '/[^ ]*/demo.yaml' "$out" | head -1)
  dir=$(dirname "$config")
  rm -f "$out"
}

# wait_ready URL [PID]: polls until the URL answers 2xx (20 s at most); with a PID, gives up as
# soon as that process has exited. On failure, says so and shows the end of the servers' log.
wait_ready() {
  for _ in $(seq 1 200); do
    curl -sfk "$1" >/dev/null && return 0
    if [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null; then
      echo "exited before $1 was ready" >&2
      show_log
      return 1
    fi
    sleep 0.1
  done
  echo "not ready: $1" >&2
  show_log
  return 1
}

# show_log: the last lines of the servers' log ($log), if there is one, on stderr.
show_log() {
  [ -s "${log:-}" ] || return 0
  echo "the end of $log:" >&2
  tail -n 20 "$log" >&2
}

# Starts `wardgate run` on a config and waits until its admin listener (given) is ready; extra
# arguments are a command prefix (taskset -c 0).
start_run() {
  local config=$1 admin=$2
  shift 2
  "$@" "$bin" run --config "$config" 2>>"${log:-/dev/null}" &
  track $!
  wait_ready "http://$admin/readyz" $!
}
