#!/usr/bin/env bash
# Prepares the patched copy of the `monty` crate the workspace builds with
# (Cargo.toml's [patch.crates-io]): the pristine monty 1.4.0 from crates.io,
# plus the small fixes in patches/ (see patches/README.md). Idempotent: the
# copy is rebuilt only when a patch is newer than it.
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

VERSION=1.4.0
TOOLCHAIN=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
DEST=target/patched/monty-$VERSION
STAMP=$DEST/.ex_monty_patched

newest_patch=$(ls -t patches/monty-$VERSION-*.patch | head -n 1)
if [ -f "$STAMP" ] && [ "$STAMP" -nt "$newest_patch" ]; then
  exit 0
fi

registry_copy() {
  { ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/monty-$VERSION 2>/dev/null || true; } | head -n 1
}

src=$(registry_copy)
if [ -z "$src" ]; then
  # Fetch the crate from crates.io with a throwaway manifest (the workspace
  # itself cannot resolve until the patched copy exists).
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/src"
  printf '[package]\nname = "fetch-monty"\nversion = "0.0.0"\nedition = "2021"\n\n[dependencies]\nmonty = "=%s"\n' "$VERSION" > "$tmp/Cargo.toml"
  : > "$tmp/src/lib.rs"
  cargo "+${TOOLCHAIN}" fetch --manifest-path "$tmp/Cargo.toml" >/dev/null
  src=$(registry_copy)
fi
if [ -z "$src" ]; then
  echo "patch-monty: cannot find the monty $VERSION sources after cargo fetch" >&2
  exit 1
fi

rm -rf "$DEST"
mkdir -p "$(dirname "$DEST")"
cp -R "$src" "$DEST"
for p in patches/monty-$VERSION-*.patch; do
  patch --quiet -d "$DEST" -p1 < "$p"
done
touch "$STAMP"
