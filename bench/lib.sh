# Shared by the load scripts: installs wrk when missing, builds the release binary, starts
# `wardgate demo` on fixed loopback ports and stops everything started (by PID) on exit.
# After `start_demo`: $bin, $config (the demo's config) and $dir (its folder) are set; add
# the PIDs of other processes to $pids to have them stopped too.

bin=target/release/wardgate
pids=""

prepare() {
  command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
  cargo build --release --quiet
}

start_demo() {
  local out
  out=$(mktemp)
  "$bin" demo --listen 127.0.0.1:18443 --admin 127.0.0.1:19090 --backend 127.0.0.1:18081 >"$out" 2>/dev/null &
  pids="$!"
  trap 'kill $pids 2>/dev/null; wait $pids 2>/dev/null; rm -f "$out"' EXIT
  for _ in $(seq 1 100); do grep -q "Press Ctrl-C" "$out" && break; sleep 0.1; done
  config=$(grep -o '/[^ ]*/demo.yaml' "$out" | head -1)
  dir=$(dirname "$config")
}

# Starts `wardgate run` on a config and waits until its admin listener (given) is ready.
start_run() {
  "$bin" run --config "$1" 2>/dev/null &
  pids="$pids $!"
  for _ in $(seq 1 100); do curl -sf "http://$2/readyz" >/dev/null && break; sleep 0.1; done
}
