#!/usr/bin/env bash
# Installs what ExMonty needs on a fresh Debian machine, then compiles it.
# Idempotent: anything already present is skipped.
#
#   scripts/setup.sh          Elixir/Erlang, the pinned Rust toolchain + wasm target, build
#   scripts/setup.sh --test   also PropEr (property tests), the pinned wasmtime CLI,
#                             wasm-tools, and the Node (jco) and Python (wasmtime-py)
#                             guest hosts in hosts/
set -euo pipefail

cd "$(dirname "$0")/.."
WITH_TEST=0
[ "${1:-}" = "--test" ] && WITH_TEST=1

WASMTIME_CLI_VERSION=50.0.1
WASM_TOOLS_VERSION=1.263.0
TOOLCHAIN=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '\n==> %s\n' "$*"; }

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    sudo_if_needed apt-get update -qq
    apt_updated=1
  fi
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- Elixir / Erlang (Debian packages; there is no hex.pm here) -------------
if ! command -v mix >/dev/null 2>&1 || ! [ -d /usr/lib/erlang/usr/include ]; then
  log "Installing Elixir and Erlang (Debian)"
  apt_install elixir erlang-dev erlang-crypto
fi

if [ "$WITH_TEST" -eq 1 ] && ! erl -noshell -eval 'case code:which(proper) of non_existing -> halt(1); _ -> halt(0) end.' >/dev/null 2>&1; then
  log "Installing PropEr (Debian erlang-proper) for property tests"
  apt_install erlang-proper
fi

# --- Rust: the pinned toolchain and the wasm32-wasip2 target -----------------
if ! command -v rustup >/dev/null 2>&1; then
  echo "rustup is required (this machine kind ships it); install it from your package manager." >&2
  exit 1
fi
if ! rustup toolchain list | grep -q "^${TOOLCHAIN}"; then
  log "Installing Rust ${TOOLCHAIN}"
fi
# Cheap when already installed; makes sure components and target are there too.
rustup toolchain install "$TOOLCHAIN" --profile minimal -c rustfmt -c clippy -t wasm32-wasip2 >/dev/null 2>&1 ||
  rustup toolchain install "$TOOLCHAIN" --profile minimal -c rustfmt -c clippy -t wasm32-wasip2

# --- Monty with our fixes (Cargo.toml's [patch.crates-io], see patches/) ------
scripts/patch-monty.sh

# --- wasmtime CLI (tests run the guest component under it) -------------------
if [ "$WITH_TEST" -eq 1 ]; then
  if [ "$(wasmtime --version 2>/dev/null | awk '{print $2}')" != "$WASMTIME_CLI_VERSION" ]; then
    log "Installing the wasmtime CLI ${WASMTIME_CLI_VERSION} (run + components only; a few minutes)"
    cargo "+${TOOLCHAIN}" install wasmtime-cli --version "$WASMTIME_CLI_VERSION" --locked \
      --no-default-features --features run,cranelift,component-model,parallel-compilation
  fi
fi

# --- Foreign guest hosts (hosts/node, hosts/python) and wasm-tools ----------
if [ "$WITH_TEST" -eq 1 ]; then
  if [ "$(wasm-tools --version 2>/dev/null | awk '{print $2}')" != "$WASM_TOOLS_VERSION" ]; then
    log "Installing wasm-tools ${WASM_TOOLS_VERSION} (validate only; about 2 minutes)"
    cargo "+${TOOLCHAIN}" install wasm-tools --version "$WASM_TOOLS_VERSION" --locked \
      --no-default-features --features validate
  fi

  if ! command -v node >/dev/null 2>&1; then
    log "Installing Node.js (Debian) for the jco host"
    apt_install nodejs npm
  fi
  if ! [ -d hosts/node/node_modules ] || [ hosts/node/package-lock.json -nt hosts/node/node_modules ]; then
    log "Installing the Node host's packages (npm ci: @bytecodealliance/jco)"
    (cd hosts/node && npm ci --no-audit --no-fund --loglevel=error && touch node_modules)
  fi

  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    log "Installing python3-venv (Debian) for the wasmtime-py host"
    apt_install python3-venv
  fi
  if ! [ -x hosts/python/.venv/bin/python ] ||
     [ hosts/python/requirements.txt -nt hosts/python/.venv/installed ]; then
    log "Installing the Python host's venv (wasmtime-py from PyPI)"
    python3 -m venv hosts/python/.venv
    hosts/python/.venv/bin/pip install --quiet --disable-pip-version-check -r hosts/python/requirements.txt
    touch hosts/python/.venv/installed
  fi
fi

# --- Build: the guest, the NIF and the type checker (cargo, through mix compile)
log "Compiling ExMonty"
mix compile
