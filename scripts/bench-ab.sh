#!/usr/bin/env bash
# A/B comparison of hoplite builds: CPU microseconds per request and system
# calls per request, the figures docs/performance.md records for each
# optimisation.
#
# Usage: scripts/bench-ab.sh BINARY...
#   e.g. git worktree add /tmp/old <rev> && (cd /tmp/old && go build -o /tmp/hoplite-old ./cmd/hoplite)
#        go build -o /tmp/hoplite-new ./cmd/hoplite
#        scripts/bench-ab.sh /tmp/hoplite-old /tmp/hoplite-new
#
# Each binary runs as `hoplite proxy` pinned to CPU $PROXY_CPU with
# GOMAXPROCS=1 in front of an nginx origin serving 1 KiB; h2load on
# $LOAD_CPU sends AB_N requests over HTTP/2 (32 connections x 10 streams)
# and over HTTP/1.1 (64 connections). The binaries take turns, AB_ROUNDS
# times, so that the machine's noise falls on all of them alike; the median
# of the rounds is printed. cpu_us/req is utime+stime from /proc/PID/stat;
# syscr/syscw per request come from /proc/PID/io (read/write-like calls
# only); sys/r and cs/r, all system calls and context switches per request,
# from `perf stat` (tracepoint raw_syscalls:sys_enter) where perf can count
# them, as in make bench, else "-" (the script says why, once).
set -u -o pipefail
[ $# -ge 1 ] || { sed -n 2,10p "$0" >&2; exit 2; }
N=${AB_N:-40000}; ROUNDS=${AB_ROUNDS:-3}
PROXY_CPU=${PROXY_CPU:-1}; LOAD_CPU=${LOAD_CPU:-0}
W=$(mktemp -d /tmp/hoplite-ab.XXXXXX)
# Run as root, nginx's worker is "nobody": it must be able to read the body
# (mktemp makes the directory 0700, and every request was a 403).
chmod 755 $W
PIDS=()
PERFPID=""
cleanup() { for p in $PERFPID "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$W"; }
trap cleanup EXIT
for c in nginx h2load openssl curl; do
  command -v $c >/dev/null || { echo "bench-ab: $c is missing (make bench installs it)" >&2; exit 1; }
done

# perf: sys/r and cs/r only if it can count both events here (a container
# may hide tracepoints; Debian's perf needs linux-perf, which make bench installs).
PERF=""
if ! command -v perf >/dev/null; then
  echo "bench-ab: perf is not installed (linux-perf); sys/r and cs/r show -" >&2
elif timeout 20 perf stat -x, -e raw_syscalls:sys_enter,context-switches -o $W/perf.probe -- true 2>/dev/null &&
     awk -F, '$3 == "raw_syscalls:sys_enter" && $1 ~ /^[0-9]+$/ {s=1}
              $3 == "context-switches" && $1 ~ /^[0-9]+$/ {c=1} END{exit !(s && c)}' $W/perf.probe; then
  PERF=1
else
  echo "bench-ab: perf cannot count raw_syscalls:sys_enter and context-switches here; sys/r and cs/r show -" >&2
fi

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext "subjectAltName=IP:127.0.0.1" -keyout $W/key.pem -out $W/cert.pem 2>/dev/null
head -c 1024 /dev/urandom > $W/body1k
cat > $W/origin.conf <<CONF
worker_processes 1; daemon off; pid $W/origin.pid; error_log $W/origin.err;
events { worker_connections 4096; }
http { access_log off; keepalive_timeout 60s; keepalive_requests 10000000;
  server { listen 127.0.0.1:18391; root $W; location / { try_files /body1k =404; } } }
CONF
taskset -c $LOAD_CPU nginx -c $W/origin.conf & PIDS+=($!)
sleep 0.5

ticks() { awk '{print $14+$15}' /proc/$1/stat; }
io() { awk '/^syscr/{r=$2} /^syscw/{w=$2} END{print r, w}' /proc/$1/io; }
measure() { # pid label h2load-args...
  local pid=$1 label=$2; shift 2
  local t0 t1 r0 w0 r1 w1 out ok i sys=- cs=-
  rm -f $W/perf.out
  if [ -n "$PERF" ]; then
    perf stat -x, -e raw_syscalls:sys_enter,context-switches -p $pid -o $W/perf.out >/dev/null 2>&1 & PERFPID=$!
    sleep 0.3   # perf opens its counters
  fi
  t0=$(ticks $pid); read r0 w0 < <(io $pid)
  out=$(timeout 300 taskset -c $LOAD_CPU h2load "$@" -n $N https://127.0.0.1:18390/ 2>&1)
  t1=$(ticks $pid); read r1 w1 < <(io $pid)
  if [ -n "$PERFPID" ]; then   # SIGINT makes perf write its counts
    kill -INT $PERFPID 2>/dev/null
    for i in $(seq 50); do kill -0 $PERFPID 2>/dev/null || break; sleep 0.1; done
    kill -KILL $PERFPID 2>/dev/null; wait $PERFPID 2>/dev/null; PERFPID=""
  fi
  ok=$(echo "$out" | awk '/^requests:/{print $8}')
  [ "${ok:-0}" -gt 0 ] || { echo "bench-ab: $label: no request succeeded" >&2; return; }
  if [ -f $W/perf.out ]; then
    sys=$(awk -F, -v n=$ok '$3 == "raw_syscalls:sys_enter" && $1 ~ /^[0-9]+$/ {printf "%.2f", $1/n}' $W/perf.out)
    cs=$(awk -F, -v n=$ok '$3 == "context-switches" && $1 ~ /^[0-9]+$/ {printf "%.3f", $1/n}' $W/perf.out)
  fi
  awk -v l="$label" -v t=$((t1-t0)) -v r=$((r1-r0)) -v w=$((w1-w0)) -v n=$ok -v s="${sys:--}" -v c="${cs:--}" \
    'BEGIN{printf "%s %.1f %.2f %.2f %s %s\n", l, t*1e6/100/n, r/n, w/n, s, c}'
}

results=$W/results
for round in $(seq $ROUNDS); do
  for b in "$@"; do
    GOMAXPROCS=1 taskset -c $PROXY_CPU "$b" proxy --from 127.0.0.1:18390 --to http://127.0.0.1:18391 \
      --cert $W/cert.pem --key $W/key.pem >/dev/null 2>&1 & pid=$!; PIDS+=($pid)
    for i in $(seq 50); do curl -sk -o /dev/null https://127.0.0.1:18390/ && break; sleep 0.1; done
    timeout 60 taskset -c $LOAD_CPU h2load -c 32 -m 10 -n 5000 https://127.0.0.1:18390/ >/dev/null 2>&1 # warm-up
    measure $pid "$b h2" -c 32 -m 10 >> $results
    measure $pid "$b h1" --h1 -c 64 >> $results
    kill $pid; wait $pid 2>/dev/null
  done
done

printf "%-40s %-3s %12s %10s %10s %8s %7s   %s\n" binary pro "cpu_us/req" "syscr/req" "syscw/req" "sys/r" "cs/r" "(cpu_us/req of each round)"
for b in "$@"; do
  for p in h2 h1; do
    grep -F "$b $p " $results | sort -k3 -n | awk -v b="$b" -v p=$p '
      {cpu[NR]=$3; r[NR]=$4; w[NR]=$5; s[NR]=$6; c[NR]=$7}
      END{m=int((NR+1)/2); all=""; for(i=1;i<=NR;i++) all=all cpu[i] " ";
          printf "%-40s %-3s %12.1f %10.2f %10.2f %8s %7s   (%s)\n", b, p, cpu[m], r[m], w[m], s[m], c[m], all}'
  done
done
