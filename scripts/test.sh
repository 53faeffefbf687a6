#!/usr/bin/env bash
# Sets everything up, then runs every check CI runs: formatting, lints,
# Rust unit tests, the ExUnit suite (which includes the adversarial cases,
# the wasmtime CLI test of the guest and the snapshot exchange with the
# foreign hosts), wasm-tools validate, and the Node and Python host suites.
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

scripts/setup.sh --test

echo "==> cargo fmt --check"
cargo fmt --all -- --check
# typecheck/ is a workspace of its own (see its Cargo.toml).
cargo fmt --manifest-path typecheck/Cargo.toml -- --check
echo "==> cargo clippy -D warnings"
cargo clippy --locked --release -p ex_monty_nif --all-targets -- -D warnings
cargo clippy --locked --release -p ex_monty_guest --target wasm32-wasip2 -- -D warnings
cargo clippy --locked --release --manifest-path typecheck/Cargo.toml \
  --target-dir "${CARGO_TARGET_DIR:-target}" --target wasm32-wasip2 -- -D warnings
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
# The foreign hosts (installed by setup.sh --test) must run, not be skipped.
EX_MONTY_FOREIGN_HOSTS=required mix test

echo "==> wasm-tools validate (the guest component)"
wasm-tools validate priv/ex_monty_guest.wasm
echo "==> wasm-tools validate (the type-check component)"
wasm-tools validate priv/ex_monty_typecheck.wasm
echo "==> Node host (jco)"
(cd hosts/node && node transpile.mjs && node --test)
echo "==> Python host (wasmtime-py)"
hosts/python/.venv/bin/python -m unittest discover -s hosts/python -p 'test_*.py'
