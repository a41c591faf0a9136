#!/usr/bin/env bash
# The one command that runs every test of runtime-grader (CI's .ci/run calls it).
# On a fresh machine it first installs what the tests need: bubblewrap from Debian's packages and the
# crates from crates.io (the only network step; grading itself runs offline).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v bwrap >/dev/null 2>&1; then
    echo "== installing bubblewrap"
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && apt-get install -y -qq bubblewrap
    else
        sudo apt-get update -qq && sudo apt-get install -y -qq bubblewrap
    fi
fi

echo "== fetching crates"
cargo fetch --locked
cargo fetch --locked --manifest-path exercise-template/Cargo.toml

echo "== format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== preparing the grader (toolchain copy, vendored crates, warm build cache)"
cargo run --locked --quiet -p grader -- setup --hidden-tests hidden-tests

echo "== tests"
cargo test --workspace --locked --no-fail-fast
