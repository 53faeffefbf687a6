#!/usr/bin/env bash
# Sets everything up, then runs every check CI runs: formatting, lints,
# Rust unit tests and the ExUnit suite (which includes the adversarial cases
# and the wasmtime CLI test of the guest).
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

scripts/setup.sh --test

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy -D warnings"
cargo clippy --locked --release -p ex_monty_nif --all-targets -- -D warnings
cargo clippy --locked --release -p ex_monty_guest --target wasm32-wasip2 -- -D warnings
echo "==> cargo test"
# One package at a time: building them together would unify their (native)
# dependency features and rebuild wasmtime a second time.
cargo test --locked --release -p ex_monty_nif
cargo test --locked --release -p ex_monty_guest

echo "==> mix format --check-formatted"
mix format --check-formatted
echo "==> mix compile --warnings-as-errors"
MIX_ENV=test mix compile --warnings-as-errors --force
echo "==> mix test"
mix test
