#!/usr/bin/env bash
# Builds wardgate's release binary with profile-guided optimization (PGO), the build whose
# figures bench/README.md gives, and prints its path on the last line:
#
#   bash deploy/pgo/build.sh [--example NAME...]    # -> target/pgo/<host>/release/wardgate
#
# Three steps, each in a target directory of its own so that none undoes another's cache:
# 1. an instrumented build (target/pgo-generate), with the release profile's settings: a function
#    the compiler keeps local is known in the profile by its codegen unit, so with other units
#    (codegen-units = 16 and no LTO, which build faster) the final build found almost nothing
#    of the profile (wg-pass's instructions per request 46,836 against 47,254 without PGO);
# 2. its training run (deploy/pgo/train.sh: the demo's traffic, about 20 s), whose counts
#    llvm-profdata merges into target/pgo-profile/wardgate.profdata; skipped while that profile
#    is newer than the instrumented binary and the training's scripts;
# 3. the release build (fat LTO, as `cargo build --release`) optimized with that profile, with
#    the examples named (the benchmark's upstream) built alongside.
# Only wardgate's binary and its dependencies are built with the profile (`--target`: build
# scripts and proc macros are not). Needs llvm-profdata, which `rustup component add
# llvm-tools` installs (done here when missing). From scratch it takes about twice as long as a
# plain release build; the plain build (`cargo build --release`) stays what the tests and the
# demo use, and works the same, only slower per request.
set -euo pipefail
cd "$(dirname "$0")/../.."
host=$(rustc -vV | sed -n 's/^host: //p')
profdata="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
if [ ! -x "$profdata" ]; then
  echo "llvm-profdata missing: rustup component add llvm-tools" >&2
  rustup component add llvm-tools >&2 || true
fi
if [ ! -x "$profdata" ]; then
  echo "cannot build with PGO: no $profdata (rustup component add llvm-tools)" >&2
  exit 1
fi

raw=$PWD/target/pgo-profile/raw
profile=$PWD/target/pgo-profile/wardgate.profdata

echo "PGO 1/3: instrumented build" >&2
RUSTFLAGS="-Cprofile-generate=$raw" \
  cargo build --release --locked --quiet --bin wardgate --target "$host" --target-dir target/pgo-generate
instrumented=target/pgo-generate/$host/release/wardgate

stale=""
for input in "$instrumented" deploy/pgo/train.sh deploy/pgo/requests.lua; do
  [ "$input" -nt "$profile" ] && stale=1
done
if [ ! -s "$profile" ] || [ -n "$stale" ]; then
  echo "PGO 2/3: training run" >&2
  rm -rf "$raw"
  bash deploy/pgo/train.sh "$instrumented" >&2
  "$profdata" merge -o "$profile" "$raw"
else
  echo "PGO 2/3: the profile is newer than the instrumented build and the training, kept" >&2
fi

echo "PGO 3/3: release build with the profile" >&2
RUSTFLAGS="-Cprofile-use=$profile" \
  cargo build --release --locked --quiet --bin wardgate "$@" --target "$host" --target-dir target/pgo
echo "target/pgo/$host/release/wardgate"
