#!/usr/bin/env bash
# The queue's own cost per job (enqueue + claim + finish, each in its transaction, one client) on
# SQLite and on PostgreSQL, side by side (issue 14's queue-overhead figure; a measurement, not a
# test). Needs GRADER_TEST_POSTGRES_URL as scripts/test.sh sets it, e.g.
#   GRADER_TEST_POSTGRES_URL=postgres://grader_test:grader_test@127.0.0.1:5432/postgres scripts/bench-queue.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${GRADER_TEST_POSTGRES_URL:?set it as scripts/test.sh does (a role that may create databases)}"
cargo test --locked --quiet -p grader --test storage -- --ignored --nocapture queue_overhead_per_job
