#!/usr/bin/env bash
# Runs every check cachet has, on a fresh machine with only the Rust
# toolchain: formatting, lints, the bare-metal build of the core, every
# test, and a short run of every fuzz target. CI runs exactly this (see .ci/run); so should you before pushing.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain: targets and components"
if command -v rustup >/dev/null 2>&1; then
  rustup target add wasm32-wasip1 x86_64-unknown-none
  rustup component add rustfmt clippy
fi

step "remote stores for the tests: nginx with WebDAV, Garage (S3), installed when missing"
if [ ! -e /usr/lib/nginx/modules/ngx_http_dav_ext_module.so ] || [ ! -x /usr/sbin/nginx ]; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light libnginx-mod-http-dav-ext
fi
if ! command -v garage >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/garage" ]; then
  # About 20 minutes on 2 cores, once per machine.
  cargo install garage --locked --version 2.5.0
fi

step "format"
cargo fmt --all -- --check

step "lints"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p cachet-core --no-default-features -- -D warnings
cargo clippy -p cachet-cli --target wasm32-wasip1 -- -D warnings
cargo clippy -p cachet-wasi --features embed --all-targets -- -D warnings

step "docs: every public item documented, no broken links"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace

step "core builds without std (and without an allocator)"
cargo build -p cachet-core --target x86_64-unknown-none --no-default-features
cargo build -p cachet-core --target x86_64-unknown-none --features alloc

step "tests"
cargo test --workspace

step "vectors"
cargo test -p cachet-tests --test conformance vectors -- --nocapture

step "wasm guest: build cachet-wasi, then run it against the native binding"
# Twice: the portable guest (any WASI preview 1 host; it syncs file by
# file) and the one built for the embedding (one host syncfs per store).
target_dir=$(cargo metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
cargo build -p cachet-wasi --target wasm32-wasip1 --release
cp "$target_dir/wasm32-wasip1/release/cachet-wasi.wasm" "$target_dir/cachet-wasi-portable.wasm"
CACHET_WASI_GUEST="$target_dir/cachet-wasi-portable.wasm" cargo test -p cachet-wasi --features embed
cargo build -p cachet-wasi --target wasm32-wasip1 --release --features host-sync
cargo test -p cachet-wasi --features embed

step "fuzz smoke: every target briefly (prints SKIPPED when cargo-fuzz cannot be installed)"
fuzz/run-smoke.sh
