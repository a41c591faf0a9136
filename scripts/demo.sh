#!/usr/bin/env bash
# Quick start: installs what is missing, prepares the grader, and serves a demo course (one
# instructor, three students, three submissions graded on the spot) until Ctrl-C.
# Idempotent: a second run reuses the build and the caches and starts the demo course afresh.
#
#   bash scripts/demo.sh            # serves on 127.0.0.1:8080 (GRADER_BIND to change)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

bind=${GRADER_BIND:-127.0.0.1:8080}
data=${GRADER_DATA_DIR:-/var/lib/runtime-grader}
demo=$data/demo
grader=${CARGO_TARGET_DIR:-$repo/target}/release/grader
step() { echo "== [$1/6] $2"; }

step 1 "sandbox: bubblewrap"
if ! command -v bwrap >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq && $sudo apt-get install -y -qq bubblewrap
fi

step 2 "building the grader (release; a few minutes the first time)"
cargo build --release --locked --quiet -p grader

step 3 "preparing the toolchain copy, vendored crates and warm cache in $data (minutes the first time)"
"$grader" --data-dir "$data" setup --hidden-tests hidden-tests

step 4 "demo course in $demo"
# The demo's database and uploads are its own; the caches are the ones just prepared.
rm -rf "$demo"
mkdir -p "$demo"
for part in toolchain vendor warm-targets; do
    ln -s "$data/$part" "$demo/$part"
done
"$grader" --data-dir "$demo" roster import scripts/demo-roster.csv >"$demo/tokens.tsv" 2>/dev/null

step 5 "starting the server on http://$bind"
"$grader" --data-dir "$demo" --hidden-tests "$repo/hidden-tests" serve --bind "$bind" 2>"$demo/server.log" &
server=$!
stop() { kill -TERM $server 2>/dev/null && wait $server 2>/dev/null || true; }
trap stop EXIT
trap 'stop; exit 0' INT TERM
until curl -fsS "http://$bind/healthz" >/dev/null 2>&1; do
    kill -0 $server 2>/dev/null || { cat "$demo/server.log"; exit 1; }
    sleep 0.5
done

step 6 "grading three submissions: the reference, a buggy variant, one that does not compile"
work=$(mktemp -d)
pack() { # pack NAME DIR: the crate in DIR as NAME.tar.gz, wrapped in 02_runtime/ as students upload it
    mkdir -p "$work/$1"
    cp -r "$2" "$work/$1/02_runtime"
    tar -czf "$work/$1.tar.gz" -C "$work/$1" 02_runtime
}
pack reference solutions/reference
cp -r solutions/reference "$work/buggy-src"
patch -s -d "$work/buggy-src" -p1 <solutions/buggy/countdown_no_wake/bug.patch
pack buggy "$work/buggy-src"
cp -r solutions/reference "$work/broken-src"
echo 'pub fn broken() -> u32 { "not a number" }' >>"$work/broken-src/src/lib.rs"
pack broken "$work/broken-src"

# A top-level field of a JSON object on stdin ("" when absent or null).
field() { python3 -c 'import json, sys; v = json.load(sys.stdin).get(sys.argv[1]); print("" if v is None else v)' "$1"; }
token() { awk -F'\t' -v id="$1" '$1 == id { print $2 }' "$demo/tokens.tsv"; }
ids=()
for pair in ada:reference grace:buggy linus:broken; do
    who=${pair%%:*}
    answer=$(curl -fsS -H "Authorization: Bearer $(token "$who")" \
        -F "file=@$work/${pair#*:}.tar.gz" "http://$bind/api/submissions")
    ids+=("$who:$(echo "$answer" | field id)")
done
for entry in "${ids[@]}"; do
    who=${entry%%:*}
    id=${entry#*:}
    while :; do
        report=$(curl -fsS -H "Authorization: Bearer $(token "$who")" \
            "http://$bind/api/submissions/$id")
        status=$(echo "$report" | field status)
        case $status in queued | running) sleep 1 ;; *) break ;; esac
    done
    score=$(echo "$report" | field score)
    echo "   submission $id by $who: $status${score:+, $score/$(echo "$report" | field max_score)}"
done
rm -rf "$work"

cat <<EOF

The demo course is served at http://$bind/ (log in with a token below; Ctrl-C stops the server).

  role        id      token
$(awk -F'\t' 'NR==FNR { role[$1] = $4; next } { printf "  %-10s  %-6s  %s\n", role[$1], $1, $2 }' \
    FS=, scripts/demo-roster.csv FS='\t' "$demo/tokens.tsv")

API:   curl -H "Authorization: Bearer TOKEN" http://$bind/api/submissions
Logs:  $demo/server.log
EOF
wait $server
