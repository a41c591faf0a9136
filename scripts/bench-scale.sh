#!/usr/bin/env bash
# Throughput of 1 and then 2 `grader worker` processes on one PostgreSQL queue, on this machine
# (issue 14's ratio; a measurement, not a test). For each count: a fresh database, a web tier
# (`serve --workers 0`), the workers (one grading at a time each, --jobs as given), 12 uploads of the
# reference solution at once, and the time from the first upload to the last result.
# Needs a prepared data folder (GRADER_DATA_DIR, from `grader setup`), GRADER_TEST_POSTGRES_URL as
# scripts/test.sh sets it, psql and curl. Usage: scripts/bench-scale.sh [GRADER_BINARY]
# (BENCH_UPLOADS: uploads per run, 12; BENCH_JOBS: each worker's --jobs, default cores.)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${GRADER_TEST_POSTGRES_URL:?set it as scripts/test.sh does (a role that may create databases)}"
G=${1:-target/release/grader}
[ -x "$G" ] || cargo build --locked --quiet --release -p grader
N=${BENCH_UPLOADS:-12}
WORK=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
tar -czf "$WORK/reference.tar.gz" --transform 's,^,02_runtime/,' -C solutions/reference Cargo.toml src
{ echo "id,name,email,role"; for i in $(seq 1 "$N"); do echo "s$i,S $i,s$i@example.org,student"; done; } >"$WORK/roster.csv"
admin=$GRADER_TEST_POSTGRES_URL
for workers in 1 2; do
    db="grader_bench_${workers}_$$"
    psql -q "$admin" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
    url="${admin%/*}/$db"
    export GRADER_DATABASE_URL=$url
    "$G" roster import "$WORK/roster.csv" >"$WORK/tokens.tsv" 2>/dev/null
    "$G" serve --bind 127.0.0.1:0 --workers 0 --min-interval-secs 0 --per-day 0 2>"$WORK/serve.log" &
    pids+=($!)
    until grep -q "listening on" "$WORK/serve.log"; do sleep 0.2; done
    base=$(sed -n 's/.*listening on \(http:[^ ]*\) .*/\1/p' "$WORK/serve.log")
    for _ in $(seq 1 "$workers"); do
        "$G" ${BENCH_JOBS:+--jobs "$BENCH_JOBS"} worker --workers 1 2>>"$WORK/workers.log" &
        pids+=($!)
    done
    until [ "$(psql -tAq "$url" -c "SELECT COUNT(*) FROM workers")" = "$workers" ]; do sleep 0.2; done
    start=$(date +%s.%N)
    while IFS=$'\t' read -r _ token; do
        curl -s -o /dev/null -H "Authorization: Bearer $token" -F "file=@$WORK/reference.tar.gz" "$base/api/submissions" &
    done <"$WORK/tokens.tsv"
    wait_for="SELECT COUNT(*) FROM jobs WHERE state IN ('done', 'error')"
    until [ "$(psql -tAq "$url" -c "$wait_for")" = "$N" ]; do sleep 0.2; done
    took=$(echo "$(date +%s.%N) - $start" | bc)
    scores=$(psql -tAq "$url" -c "SELECT string_agg(DISTINCT status || ' ' || score, ', ') FROM submissions")
    # The mean time of one grading, and how the jobs were shared.
    each=$(psql -tAq "$url" -c "SELECT round(avg(finished_at - started_at) / 1000.0, 1) FROM jobs")
    split=$(psql -tAq "$url" -c "SELECT string_agg(n::text, '+') FROM (SELECT COUNT(*) AS n FROM jobs GROUP BY worker) w")
    # Each worker's gradings in order (s): a process's first one also warms its own caches.
    runs=$(psql -tAq "$url" -c "SELECT string_agg(d, ' | ') FROM (SELECT string_agg(round((finished_at - started_at) / 1000.0, 1)::text, ' ' ORDER BY started_at) AS d FROM jobs GROUP BY worker) w")
    printf '%s worker process(es): %s gradings in %.1f s = %.1f per minute, %s s each, split %s (%s)\n' \
        "$workers" "$N" "$took" "$(echo "$N * 60 / $took" | bc -l)" "$each" "$split" "$scores"
    echo "  gradings per worker, in order (s): $runs"
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
    psql -q "$admin" -c "DROP DATABASE $db WITH (FORCE)"
done
