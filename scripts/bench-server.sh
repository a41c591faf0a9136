#!/usr/bin/env bash
# Benchmark of the grading server (not a test: it measures, it does not judge). Prints, for the
# release binary on this machine:
#   1. the reference solution graded by the engine alone, then uploaded -> final score through the server;
#   2. throughput on a queue of 20 mixed submissions (correct, buggy, not building, rejected);
#   3. with 500 students x 20 submissions seeded: the gradebook JSON and one submission JSON under 50
#      concurrent connections (wrk: req/s, p50, p99);
#   4. 200 concurrent uploads: how many answered 202, and how long the slowest took (none lost);
#   5. the server's RSS idle and the highest seen under that load.
# Needs a prepared data folder (GRADER_DATA_DIR, from `grader setup`), wrk (apt-get install wrk),
# sqlite3, python3 and curl. Usage: scripts/bench-server.sh  (about 6 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
SHARED=${GRADER_DATA_DIR:-/var/lib/runtime-grader}
PORT=${BENCH_PORT:-18080}
BASE=http://127.0.0.1:$PORT

for tool in wrk sqlite3 python3 curl patch; do
    command -v "$tool" >/dev/null || { echo "bench-server: $tool is needed" >&2; exit 2; }
done
cargo build --release --quiet -p grader
BIN=$REPO/target/release/grader

WORK=$(mktemp -d)
chmod 755 "$WORK" # the sandbox user must reach the data folder
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# A data folder of its own (database, uploads, job folders) sharing the prepared caches.
DATA=$WORK/data
mkdir -p "$DATA"
for part in toolchain vendor warm-targets; do ln -s "$SHARED/$part" "$DATA/$part"; done

# The archives: a crate folder as the .tar.gz a student uploads.
pack() { # pack SRC_DIR OUT
    mkdir -p "$WORK/pack/02_runtime"
    cp -r "$1/src" "$1/Cargo.toml" "$WORK/pack/02_runtime/"
    tar -czf "$2" -C "$WORK/pack" 02_runtime
    rm -rf "$WORK/pack"
}
mkdir -p "$WORK/mix"
pack solutions/reference "$WORK/reference.tar.gz"
n=0
for s in reference heap-timer-channels parking-slab tick-table; do
    for copy in 1 2 3; do n=$((n + 1)); cp "$WORK/reference.tar.gz" "$WORK/mix/$n.tar.gz"; [ "$s" = reference ] || pack "solutions/$s" "$WORK/mix/$n.tar.gz"; done
done
for bug in priority_ignored lifo_within_priority metrics_spawned_counts_rejected countdown_off_by_one; do
    n=$((n + 1))
    cp -r solutions/reference "$WORK/bug"
    patch -s -d "$WORK/bug" -p1 < "solutions/buggy/$bug/bug.patch"
    pack "$WORK/bug" "$WORK/mix/$n.tar.gz"
    rm -rf "$WORK/bug"
done
for broken in 1 2; do
    n=$((n + 1))
    cp -r solutions/reference "$WORK/broken"
    echo "fn broken( {" >> "$WORK/broken/src/lib.rs"
    pack "$WORK/broken" "$WORK/mix/$n.tar.gz"
    rm -rf "$WORK/broken"
done
for junk in 1 2; do n=$((n + 1)); head -c 2000 /dev/urandom > "$WORK/mix/$n.tar.gz"; done

# 500 students and one instructor.
{
    echo "id,name,email,role"
    for i in $(seq -w 1 500); do echo "s$i,Student $i,s$i@example.org,student"; done
    echo "t1,Teacher,t1@example.org,instructor"
} > "$WORK/roster.csv"
"$BIN" --data-dir "$DATA" roster import "$WORK/roster.csv" > "$WORK/tokens.tsv" 2>/dev/null
token() { awk -F'\t' -v id="$1" '$1 == id { print $2 }' "$WORK/tokens.tsv"; }
T1=$(token t1)

now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$(now)"; }
rss() { awk '/VmRSS/ { printf "%.1f MB", $2 / 1024 }' "/proc/$SERVER_PID/status"; }

echo "== 1. the reference: engine alone, then through the server"
start=$(now)
"$BIN" --data-dir "$DATA" --hidden-tests hidden-tests grade "$WORK/reference.tar.gz" --format json > "$WORK/engine.json" 2> "$WORK/engine.log" || { cat "$WORK/engine.log" >&2; exit 1; }
echo "engine only (grader grade): $(since "$start") s, score $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["score"])' "$WORK/engine.json")"

"$BIN" --data-dir "$DATA" --hidden-tests hidden-tests serve --bind "127.0.0.1:$PORT" \
    --min-interval-secs 0 --per-day 0 2> "$WORK/server.log" &
SERVER_PID=$!
until grep -q "listening on" "$WORK/server.log"; do sleep 0.1; done
sleep 1
echo "RSS idle: $(rss)"

upload() { # upload TOKEN FILE -> the submission's id
    curl -sf -H "Authorization: Bearer $1" -F "file=@$2" "$BASE/api/submissions" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
S1=$(token s001)
start=$(now)
id=$(upload "$S1" "$WORK/reference.tar.gz")
curl -sN -H "Authorization: Bearer $S1" "$BASE/api/submissions/$id/events" | grep -m1 '"event":"done"' > "$WORK/done.txt"
echo "upload -> final score through the server: $(since "$start") s ($(cat "$WORK/done.txt"))"

echo "== 2. throughput: 20 mixed submissions queued at once, 1 worker"
queued_done() { sqlite3 "$DATA/grader.db" "SELECT COUNT(*) FROM jobs WHERE state IN ('done','error')"; }
before=$(queued_done)
start=$(now)
i=0
for f in "$WORK"/mix/*.tar.gz; do i=$((i + 1)); upload "$(token "s$(printf %03d $((i + 1)))")" "$f" > /dev/null; done
until [ "$(queued_done)" -ge $((before + 20)) ]; do sleep 0.5; done
took=$(since "$start")
echo "20 graded in $took s: $(python3 -c "import sys; print(f'{20 * 60 / float(sys.argv[1]):.1f}')" "$took") per minute"
sqlite3 "$DATA/grader.db" "SELECT status, COUNT(*) FROM submissions WHERE id > 1 GROUP BY status" | tr '\n' ' '; echo

echo "== 3. 500 students x 20 submissions seeded; 50 connections"
# Every student gets 20 copies of the graded reference's row (its real report), some late.
sqlite3 "$DATA/grader.db" <<SQL
WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < 20)
INSERT INTO submissions (person_id, created_at, file_name, size_bytes, sha256, status, score, max_score,
    report, hidden_version, graded_at, late_ms, penalty_pct, final_score, categories)
SELECT p.id, s.created_at - k.n * 60000, s.file_name, s.size_bytes, s.sha256, s.status,
    s.score - (k.n % 7) * 5, s.max_score, s.report, s.hidden_version, s.graded_at,
    CASE WHEN k.n % 5 = 0 THEN 3600000 END, CASE WHEN k.n % 5 = 0 THEN 10 ELSE 0 END,
    s.final_score - (k.n % 7) * 5, s.categories
FROM people p, k, (SELECT * FROM submissions WHERE id = $id) s WHERE p.role = 'student';
SQL
echo "submissions: $(sqlite3 "$DATA/grader.db" "SELECT COUNT(*) FROM submissions")"
peak=0
sample_rss() { while kill -0 "$SERVER_PID" 2>/dev/null; do awk '/VmRSS/ { print $2 }' "/proc/$SERVER_PID/status"; sleep 0.2; done; }
sample_rss > "$WORK/rss.txt" &
SAMPLER=$!
# The seeding changed the gradebook: the first request builds it, the others reuse it.
echo "gradebook built (first request): $(curl -s -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $T1" "$BASE/api/gradebook") s"
# The gradebook as its instructor reads it, a submission as its student does (the student's view).
for who_path in "$T1 /api/gradebook" "$S1 /api/submissions/$id"; do
    read -r who path <<< "$who_path"
    wrk -t2 -c50 -d10s --latency -H "Authorization: Bearer $who" "$BASE$path" > "$WORK/wrk.txt"
    python3 - "$path" "$WORK/wrk.txt" <<'PY'
import re, sys
text = open(sys.argv[2]).read()
rps = re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)
lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", text, re.M))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(f"{sys.argv[1]}: {rps} req/s, p50 {lat['50']}, p99 {lat['99']}" + (f", {errors.group(1)} non-2xx" if errors else ""))
PY
done

echo "== 4. 200 concurrent uploads (students s101..s300)"
count() { sqlite3 "$DATA/grader.db" "SELECT COUNT(*) FROM submissions"; }
files() { sqlite3 "$DATA/grader.db" "SELECT COUNT(*) FROM uploads"; }  # stored with the submission
subs_before=$(count)
files_before=$(files)
python3 - "$BASE" "$WORK/tokens.tsv" "$WORK/reference.tar.gz" <<'PY'
import http.client, sys, threading, time, uuid
base, tokens, archive = sys.argv[1], sys.argv[2], open(sys.argv[3], "rb").read()
host, port = base.removeprefix("http://").split(":")
tok = dict(line.rstrip("\n").split("\t") for line in open(tokens))
ids = [f"s{i:03d}" for i in range(101, 301)]
barrier = threading.Barrier(len(ids))
results = []
def one(who):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"02_runtime.tar.gz\"\r\n"
            f"Content-Type: application/gzip\r\n\r\n").encode() + archive + f"\r\n--{boundary}--\r\n".encode()
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    barrier.wait()
    t = time.monotonic()
    conn.request("POST", "/api/submissions", body, {"Authorization": f"Bearer {tok[who]}",
                 "Content-Type": f"multipart/form-data; boundary={boundary}"})
    status = conn.getresponse().status
    results.append((status, time.monotonic() - t))
threads = [threading.Thread(target=one, args=(w,)) for w in ids]
start = time.monotonic()
for t in threads: t.start()
for t in threads: t.join()
wall = time.monotonic() - start
accepted = sum(1 for s, _ in results if s == 202)
slowest = max(d for _, d in results)
print(f"{accepted}/200 answered 202; slowest {slowest:.2f} s; all within {wall:.2f} s")
PY
echo "stored: $(($(count) - subs_before)) new submissions, $(($(files) - files_before)) new files"
kill "$SAMPLER" 2>/dev/null || true
echo "== 5. RSS: highest under load $(sort -n "$WORK/rss.txt" | tail -1 | awk '{ printf "%.1f MB", $1 / 1024 }'), now $(rss)"
