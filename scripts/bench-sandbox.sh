#!/usr/bin/env bash
# What each piece of a test process's sandbox costs (issue 15's "cheaper sandbox" question; a
# measurement, not a test): the same command lines the grader runs, one piece added at a time,
# run N times one after another. Prints the wall time and the whole machine's CPU time per run
# (from /proc/stat, so the kernel's deferred namespace clean-up counts too), and each line's cost
# over the line before; last, the bash wrapper and `setpriv` that the exec helper replaced, for
# comparison. Needs root (the helper drops to uid 65534, as the grader does), bwrap, setpriv and
# bash; run it on a quiet machine.
#   scripts/bench-sandbox.sh [N]   (default 200; HELPER=path/to/grader-sandbox-exec, default: built)
set -euo pipefail
n=${1:-200}
[ "$(id -u)" = 0 ] || { echo "bench-sandbox.sh: run it as root (the grader's sandbox drops to uid 65534 from root)" >&2; exit 2; }
for tool in bwrap setpriv bash; do
  command -v "$tool" >/dev/null || { echo "bench-sandbox.sh: $tool is not installed (scripts/test.sh installs it)" >&2; exit 2; }
done

if [ -z "${HELPER:-}" ]; then
  cargo build --quiet --locked -p grader --bin grader-sandbox-exec
  HELPER=$(cargo metadata --format-version 1 --no-deps | sed 's/.*"target_directory":"\([^"]*\)".*/\1/')/debug/grader-sandbox-exec
fi
helper=("$HELPER" --status-fifo /dev/null --rlimit core 0 0 --rlimit cpu 11 12 --user 65534 --)

job=$(mktemp -d)
chmod 755 "$job" # the sandbox runs as uid 65534
trap 'rm -rf "$job"' EXIT
# The bash wrapper the grader ran before its exec helper, without the cgroups it joined.
wrapper='fifo=$1; shift
while [ "$1" != -- ]; do ulimit "$1" "$2" || exit 125; shift 2; done; shift
echo 1000 > /proc/self/oom_score_adj || exit 125
for fd in /proc/$$/fd/*; do
  fd=${fd##*/}
  if [ "$fd" -gt 2 ] && [ -e "/proc/$$/fd/$fd" ]; then exec {fd}>&-; fi
done
exec 3>"$fifo" || exit 125
exec "$@"'
setpriv=(setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs --)
system=(--ro-bind /usr /usr)
for link in /bin /sbin /lib /lib64; do
  if [ -L "$link" ]; then system+=(--symlink "$(readlink "$link")" "$link");
  elif [ -d "$link" ]; then system+=(--ro-bind "$link" "$link"); fi
done
for file in /etc/ld.so.cache /etc/ld.so.conf /etc/ld.so.conf.d /etc/alternatives; do
  [ -e "$file" ] && system+=(--ro-bind "$file" "$file")
done
namespaces=(--unshare-all --unshare-user --disable-userns --hostname sandbox)
rest=(--die-with-parent --new-session --cap-drop ALL --clearenv --setenv PATH /usr/bin:/bin
  --setenv HOME /tmp "${system[@]}" --proc /proc --dev /dev --size 67108864 --tmpfs /tmp
  --ro-bind "$job" /work --chdir /work --json-status-fd 3)
no_net=(--unshare-user --unshare-pid --unshare-ipc --unshare-uts --unshare-cgroup-try
  --disable-userns --hostname sandbox)

busy() { awk '/^cpu /{print $2+$3+$4+$6+$7+$8}' /proc/stat; }
tick=$(getconf CLK_TCK)
previous=
measure() {
  local label=$1; shift
  local c0 t0 c1 t1 wall cpu
  c0=$(busy); t0=$(date +%s%N)
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 3>/dev/null || { echo "bench-sandbox.sh: $label failed: $*" >&2; exit 1; }; done
  t1=$(date +%s%N)
  sleep 0.5 # the kernel's deferred clean-up of the last namespaces
  c1=$(busy)
  wall=$(( (t1 - t0) / n / 1000 ))
  cpu=$(( (c1 - c0) * 1000000 / tick / n ))
  if [ -n "$previous" ]; then
    printf '%-52s wall %5d us  cpu %5d us  (+%d us of CPU)\n' "$label" "$wall" "$cpu" $(( cpu - previous ))
  else
    printf '%-52s wall %5d us  cpu %5d us\n' "$label" "$wall" "$cpu"
  fi
  previous=$cpu
}

echo "$n runs each, one after another; CPU is the whole machine's"
measure "/bin/true" /bin/true
measure "+ the exec helper (rlimits, fds, status fd, uid 65534)" "${helper[@]}" /bin/true
measure "+ bwrap, no network namespace" "${helper[@]}" bwrap "${no_net[@]}" "${rest[@]}" /bin/true
measure "+ the network namespace (the grader's command line)" "${helper[@]}" bwrap "${namespaces[@]}" "${rest[@]}" /bin/true
previous=
echo "for comparison, what the helper replaced:"
measure "the bash wrapper + setpriv + bwrap, as before" bash -c "$wrapper" w /dev/null -c 0 -- "${setpriv[@]}" bwrap "${namespaces[@]}" "${rest[@]}" /bin/true
