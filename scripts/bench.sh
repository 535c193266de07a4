#!/usr/bin/env bash
# Benchmark suite (`make bench`): hoplite next to nginx, HAProxy, h2o and
# Caddy, each a TLS front proxy for the same HTTP/1.1 origin (nginx), loaded
# by h2load (HTTP/1.1, HTTP/2) and cmd/hbench (HTTP/3, fixed-rate latency,
# idle connections). Writes docs/bench/results.md, chart.png and the raw data.
#
# Around every throughput run (h2, h1, h3, get1m, post1m), where perf can
# read tracepoints (Debian's linux-perf), `perf stat` counts the proxy's
# system calls (raw_syscalls:sys_enter) and context switches; divided by
# the successful requests they give sys/r and cs/r, as
# ../shared/bench/peers.sh does. Unlike time, they do not depend on what
# else the machine runs. Without perf those columns show "-". Counting a
# tracepoint costs the proxy a little kernel time per call, which its CPU
# figure includes (BENCH_PERF=0 leaves perf out).
#
# Each proxy runs pinned to CPU $PROXY_CPU with one worker/thread
# (GOMAXPROCS=1 for Go); the origin and the load generators share
# $LOAD_CPU. A proxy is started afresh for every scenario, so its peak RSS
# (VmHWM) belongs to that scenario. Every measured run is repeated
# BENCH_REPEAT times; the tables give the median.
#
# Scenarios (BENCH_SCENARIOS, default all):
#   h2      h2load, 32 connections x 10 streams, GET of a 1 KiB body
#   h1      h2load --h1, 64 keep-alive connections, GET 1 KiB
#   h3      hbench, 32 connections x 10 streams, GET 1 KiB (caddy, hoplite)
#   get1m   h2load over HTTP/2, 16 connections x 4 streams, GET of 1 MiB
#   post1m  h2load over HTTP/2, 16 connections x 4 streams, POST of 1 MiB
#           (the origin reads and discards the body; checked in its log)
#   rate    hbench open loop at BENCH_RATE req/s over h1, h2 (and h3 for
#           caddy, hoplite): p50 and p99 latency
#   idle    hbench holds BENCH_IDLE_N idle TLS connections over h1, then
#           h2: RSS per connection = (VmRSS with them - VmRSS before) / N
#
# Settings (environment):
#   BENCH_PROXIES    proxies to run (default "nginx haproxy h2o caddy hoplite")
#   BENCH_SCENARIOS  scenarios to run (default "h2 h1 h3 get1m post1m rate idle")
#   BENCH_REPEAT     measured runs per figure, median reported (default 3)
#   BENCH_SECS       seconds per measured throughput run (default 4): h2load
#                    runs the warm-up's rate x BENCH_SECS requests; hbench (h3)
#                    runs for BENCH_SECS
#   BENCH_RATE       fixed request rate of the latency runs (default 1000: well
#                    below every proxy's capacity here; results.md flags any
#                    proxy and protocol for which it is over half)
#   BENCH_RATE_SECS  seconds per latency run (default 4)
#   BENCH_IDLE_N     idle connections (default 10000), spread over one loopback
#                    source address per 500 (127.0.0.1, .2, ...), like many clients
#   BENCH_IDLE_REPEAT  idle runs per proxy and protocol (default 1: memory is
#                    steady, and each run opens BENCH_IDLE_N TLS connections)
#   BENCH_DIR        work directory (default /tmp/hoplite-bench)
#   BENCH_OUT        output directory (default docs/bench in the repository)
#   BENCH_PORT       first port; proxies listen on BENCH_PORT..+4, the origin
#                    on BENCH_PORT+10 (default 18440), all on 127.0.0.1
#   PROXY_CPU, LOAD_CPU  CPUs for the proxy and for origin + load (default 1, 0)
#   HOPLITE_ARGS     replaces hoplite's arguments (default: the proxy command below)
#   BENCH_NOTE       a line of text added to results.md (e.g. what else ran)
#   BENCH_PERF       1 (default): sys/r and cs/r with perf stat where it can; 0: not
#
# Run as root on Debian to let it install what is missing (apt-get:
# nginx-light haproxy h2o nghttp2-client gnuplot-nox curl openssl procps
# linux-perf;
# Caddy with go install into ~/.cache/hoplite-peers/bin, never into the
# project). Needs Go, like the rest of the repository.
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=${BENCH_DIR:-/tmp/hoplite-bench}
OUT=${BENCH_OUT:-$ROOT/docs/bench}
PROXIES=${BENCH_PROXIES:-"nginx haproxy h2o caddy hoplite"}
SCENARIOS=${BENCH_SCENARIOS:-"h2 h1 h3 get1m post1m rate idle"}
REPEAT=${BENCH_REPEAT:-3}
SECS=${BENCH_SECS:-4}
RATE=${BENCH_RATE:-1000}
RATE_SECS=${BENCH_RATE_SECS:-4}
IDLE_N=${BENCH_IDLE_N:-10000}
IDLE_REPEAT=${BENCH_IDLE_REPEAT:-1}
IDLE_SOURCES=$(( (IDLE_N + 499) / 500 )); [ $IDLE_SOURCES -gt 254 ] && IDLE_SOURCES=254
BASE=${BENCH_PORT:-18440}
ORIGIN_PORT=$((BASE + 10))
PROXY_CPU=${PROXY_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
PEERS_BIN=${PEERS_BIN:-$HOME/.cache/hoplite-peers/bin}
CADDY=${CADDY:-$PEERS_BIN/caddy}
CADDY_VERSION=v2.11.9
GO=${GO:-go}
CLK_TCK=$(getconf CLK_TCK)
T0=$(date +%s)

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- Processes: only those started here are ever stopped, by PID. --------
PID=""        # the proxy under test
ORIGIN=""     # the origin nginx
IDLER=""      # a background hbench idle
PERFPID=""    # a background perf stat
cleanup() {
  local p
  for p in $PERFPID $IDLER $PID $ORIGIN; do stop_pid "$p"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop_pid ends one process we started: SIGTERM, then SIGKILL after 5 s.
stop_pid() {
  local p=$1 i
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 0
  kill -TERM "$p" 2>/dev/null
  for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  return 0
}

# --- Tools ----------------------------------------------------------------
install_tools() {
  local need="" pkgs="" c
  for c in nginx:nginx-light haproxy:haproxy h2o:h2o h2load:nghttp2-client gnuplot:gnuplot-nox \
           curl:curl openssl:openssl taskset:util-linux pgrep:procps perf:linux-perf; do
    command -v ${c%%:*} >/dev/null || { need="$need ${c%%:*}"; pkgs="$pkgs ${c#*:}"; }
  done
  if [ -n "$need" ]; then
    [ "$(id -u)" = 0 ] || die "missing:$need (run as root to install them with apt-get)"
    log "installing$pkgs"
    # nginx-light is Debian 12's small nginx; later releases have only nginx.
    (apt-get update -q && { DEBIAN_FRONTEND=noninteractive apt-get install -y -q $pkgs ||
       DEBIAN_FRONTEND=noninteractive apt-get install -y -q ${pkgs/nginx-light/nginx}; }) >"$W/apt.log" 2>&1 \
      || die "apt-get install failed, see $W/apt.log"
    # The packages start their system services; the benchmark runs its own.
    systemctl stop nginx haproxy h2o >/dev/null 2>&1 || true
  fi
  if [[ " $PROXIES " == *" caddy "* ]] && [ ! -x "$CADDY" ]; then
    log "building caddy $CADDY_VERSION into $PEERS_BIN"
    GOBIN=$PEERS_BIN $GO install github.com/caddyserver/caddy/v2/cmd/caddy@$CADDY_VERSION >"$W/caddy-build.log" 2>&1 \
      || log "caddy did not build (see $W/caddy-build.log); skipping it"
  fi
  log "building hoplite and hbench"
  (cd "$ROOT" && $GO build -o "$W/hoplite" ./cmd/hoplite && $GO build -o "$W/hbench" ./cmd/hbench) \
    || die "go build failed"
  TREE=$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)
  perf_probe
}

# perf_probe sets PERF=1 if perf stat can count the two events sys/r and
# cs/r come from (a container may hide tracepoints, or the kernel may have
# no matching perf), else PERF_WHY, said once here and in results.md.
PERF="" PERF_WHY=""
perf_probe() {
  local out=$W/perf.probe
  rm -f $out
  if [ "${BENCH_PERF:-1}" = 0 ]; then
    PERF_WHY="BENCH_PERF=0"
  elif ! command -v perf >/dev/null; then
    PERF_WHY="perf is not installed (Debian's linux-perf; run as root to let the bench install it)"
  elif ! timeout 20 perf stat -x, -e raw_syscalls:sys_enter,context-switches -o $out -- true >$out.err 2>&1; then
    PERF_WHY="perf stat failed: $(grep -v '^$' $out.err | head -n 2 | tr '\n' ' ')"
  elif ! awk -F, '$3 == "raw_syscalls:sys_enter" && $1 ~ /^[0-9]+$/ {s=1}
                  $3 == "context-switches" && $1 ~ /^[0-9]+$/ {c=1} END{exit !(s && c)}' $out; then
    PERF_WHY="perf cannot count raw_syscalls:sys_enter and context-switches here: $(grep -v '^#' $out | grep -v '^$' | head -n 2 | tr '\n' ' ')"
  else
    PERF=1
  fi
  PERF_WHY=$(sed 's/ *$//' <<<"$PERF_WHY")
  [ -n "$PERF" ] || log "sys/r and cs/r will show -: $PERF_WHY"
}

raise_fd_limit() { # sets FDLIM: the open-file limit every process here gets
  local want=$((IDLE_N * 2 + 10000))
  [ $want -lt 65536 ] && want=65536
  ulimit -Hn $want 2>/dev/null || true   # needs root (CAP_SYS_RESOURCE)
  ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
  FDLIM=$(ulimit -Sn)
  [ "$FDLIM" -gt $((IDLE_N + 1000)) ] || log "warning: ulimit -n is $FDLIM, too low for $IDLE_N idle connections"
}

# --- Files and configurations ----------------------------------------------
write_files() {
  mkdir -p "$W/www" "$OUT"
  cd "$W" || die "cd $W"
  [ -f cert.pem ] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout key.pem -out cert.pem 2>/dev/null || die "openssl"
  cat cert.pem key.pem >combined.pem
  head -c 768 /dev/urandom | base64 -w0 >www/1k          # 1024 bytes
  head -c 786432 /dev/urandom | base64 -w0 >www/1m       # 1048576 bytes
  head -c 786432 /dev/urandom | base64 -w0 >upload1m     # 1048576 bytes
  : >upload.log

  # The origin: 1 KiB and 1 MiB bodies, a sink for uploads, stub_status for
  # the count of connections it accepted. /upload reads the whole body
  # before it answers, like an application would: proxy_pass reads it first
  # (then sends the sink only the header, over a kept-alive unix socket,
  # whose few connections are opened at warm-up). Its log line has the
  # request_length, which shows the body was read.
  cat >origin.conf <<CONF
worker_processes 1; daemon off; pid $W/origin.pid; error_log $W/origin.err;
worker_rlimit_nofile $FDLIM;
events { worker_connections 16384; }
http { access_log off; keepalive_timeout 300s; keepalive_requests 10000000;
  log_format up '\$status \$request_length';
  upstream sink { server unix:$W/sink.sock; keepalive 128; keepalive_requests 10000000; }
  server { listen 127.0.0.1:$ORIGIN_PORT backlog=4096; root $W/www;
    location = /status { stub_status; }
    location = /upload { client_max_body_size 2m; client_body_buffer_size 1m;
      access_log $W/upload.log up;
      proxy_pass http://sink; proxy_pass_request_body off; proxy_set_header Content-Length "";
      proxy_http_version 1.1; proxy_set_header Connection ""; }
    location / { } }
  server { listen unix:$W/sink.sock; default_type text/plain; return 200 "ok\n"; } }
CONF

  # Peers: one worker or thread, connection limits raised for the idle
  # scenario, client idle timeouts above its hold time, persistent upstream
  # connections (nginx pools none unless told: 1024 idle, hoplite's
  # default; HAProxy, h2o and Caddy on their defaults). nginx streams
  # uploads and does not spill responses to temporary files.
  cat >nginx.conf <<CONF
worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/nginx.err;
worker_rlimit_nofile $FDLIM;
events { worker_connections $((IDLE_N + 1000)); }
http { access_log off; keepalive_timeout 300s; keepalive_requests 10000000;
  client_max_body_size 2m; proxy_request_buffering off; proxy_max_temp_file_size 0;
  upstream up { server 127.0.0.1:$ORIGIN_PORT; keepalive 1024; keepalive_requests 10000000; }
  server { listen 127.0.0.1:$((BASE + 0)) ssl http2; ssl_certificate $W/cert.pem; ssl_certificate_key $W/key.pem;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF

  cat >haproxy.cfg <<CONF
global
  nbthread 1
  maxconn $((IDLE_N + 1000))
  # Run even where the open-file limit cannot be raised to 2 x maxconn
  # (idle client connections need one descriptor each, not two).
  no strict-limits
defaults
  mode http
  timeout client 300s
  timeout http-keep-alive 300s
  timeout server 30s
  timeout connect 5s
  http-reuse always
frontend fe
  bind 127.0.0.1:$((BASE + 1)) ssl crt $W/combined.pem alpn h2,http/1.1
  default_backend be
backend be
  server s1 127.0.0.1:$ORIGIN_PORT
CONF

  cat >h2o.conf <<CONF
num-threads: 1
user: root
max-connections: $((IDLE_N + 1000))
http1-request-timeout: 300
http2-idle-timeout: 300
error-log: $W/h2o.err
listen:
  host: 127.0.0.1
  port: $((BASE + 2))
  ssl:
    certificate-file: $W/cert.pem
    key-file: $W/key.pem
    ocsp-update-interval: 0
hosts:
  default:
    paths:
      /:
        proxy.reverse.url: http://127.0.0.1:$ORIGIN_PORT/
CONF

  cat >Caddyfile <<CONF
{
  admin off
  auto_https off
  servers {
    protocols h1 h2 h3
  }
}
https://127.0.0.1:$((BASE + 3)) {
  bind 127.0.0.1
  tls $W/cert.pem $W/key.pem
  reverse_proxy 127.0.0.1:$ORIGIN_PORT
}
CONF
}

port_of() {
  case $1 in nginx) echo $((BASE + 0));; haproxy) echo $((BASE + 1));; h2o) echo $((BASE + 2));;
    caddy) echo $((BASE + 3));; hoplite) echo $((BASE + 4));; esac
}

# start_proxy NAME: sets PID and PORT, waits until it answers (5 s at most).
start_proxy() {
  PORT=$(port_of $1)
  if curl -sk -o /dev/null --max-time 2 https://127.0.0.1:$PORT/; then
    log "port $PORT is already in use; not starting $1"; PID=""; return 1
  fi
  case $1 in
    nginx)   taskset -c $PROXY_CPU nginx -c $W/nginx.conf >$W/nginx.log 2>&1 & PID=$!;;
    haproxy) taskset -c $PROXY_CPU haproxy -f $W/haproxy.cfg -db >$W/haproxy.log 2>&1 & PID=$!;;
    h2o)     taskset -c $PROXY_CPU h2o -c $W/h2o.conf >$W/h2o.log 2>&1 & PID=$!;;
    caddy)   GOMAXPROCS=1 taskset -c $PROXY_CPU $CADDY run --config $W/Caddyfile --adapter caddyfile >$W/caddy.log 2>&1 & PID=$!;;
    hoplite) GOMAXPROCS=1 taskset -c $PROXY_CPU $W/hoplite ${HOPLITE_ARGS:-proxy --from 127.0.0.1:$PORT \
               --to http://127.0.0.1:$ORIGIN_PORT --cert $W/cert.pem --key $W/key.pem} >$W/hoplite.log 2>&1 & PID=$!;;
  esac
  local i
  for i in $(seq 50); do
    kill -0 $PID 2>/dev/null || break
    curl -sk -o /dev/null --max-time 2 https://127.0.0.1:$PORT/1k && return 0
    sleep 0.1
  done
  log "$1 did not start (see $W/$1.log)"; stop_pid $PID; PID=""; return 1
}

stop_proxy() { stop_pid "$PID"; PID=""; sleep 0.2; }

# --- Measurements from /proc and the origin -------------------------------
pids_of() { echo $1 $(pgrep -P $1 2>/dev/null); }   # a proxy and its children (nginx workers)
cputicks() { local t=0 p; for p in $(pids_of $1); do
  [ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
status_kb() { local t=0 p v; for p in $(pids_of $1); do    # status_kb PID VmRSS|VmHWM, summed
  v=$(awk -v k="$2:" '$1==k{print $2}' /proc/$p/status 2>/dev/null); t=$((t + ${v:-0})); done; echo $t; }
accepts() { curl -s --max-time 5 http://127.0.0.1:$ORIGIN_PORT/status | awk 'NR==3{print $1}'; }

# perf_start: counts the proxy's (and its children's) system calls and
# context switches from now to perf_stop, into $W/perf.out.
perf_start() {
  [ -n "$PERF" ] || return 0
  rm -f $W/perf.out
  perf stat -x, -e raw_syscalls:sys_enter,context-switches -p "$(pids_of $PID | tr ' ' ,)" \
    -o $W/perf.out >$W/perf.err 2>&1 & PERFPID=$!
  sleep 0.3   # perf opens its counters; the idle proxy's few calls here are noise
}
# perf_stop OK: stops perf (SIGINT makes it write its counts) and sets SYSR
# and CSR, per successful request, or empty.
perf_stop() {
  local ok=$1 i
  SYSR="" CSR=""
  [ -n "$PERFPID" ] || return 0
  kill -INT $PERFPID 2>/dev/null
  for i in $(seq 50); do kill -0 $PERFPID 2>/dev/null || break; sleep 0.1; done
  stop_pid $PERFPID; PERFPID=""
  [ -f $W/perf.out ] && [ "${ok:-0}" -gt 0 ] || return 0
  SYSR=$(awk -F, -v n=$ok '$3 == "raw_syscalls:sys_enter" && $1 ~ /^[0-9]+$/ {printf "%.2f", $1/n}' $W/perf.out)
  CSR=$(awk -F, -v n=$ok '$3 == "context-switches" && $1 ~ /^[0-9]+$/ {printf "%.3f", $1/n}' $W/perf.out)
}

# record PROXY SCENARIO METRIC VALUE: one measured value, one line.
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$W/runs.tsv"; }

# h2load_run ARGS...: one h2load run on the load CPU, output in $H2OUT.
h2load_run() {
  H2OUT=$(timeout $((SECS * 5 + 60)) taskset -c $LOAD_CPU h2load "$@" 2>&1)
}

# origin_conns A0 A1: connections the origin accepted between two readings
# of stub_status, less the one that made the second reading.
origin_conns() { echo $(( $2 - $1 - 1 )); }

# throughput_h2load PROXY SCENARIO PATH WARMUP_REQUESTS H2LOAD_ARGS...
# A measured run is a fixed number of requests, the warm-up's rate times
# BENCH_SECS, so that it ends cleanly: a timed run (-D) cuts the requests in
# flight at its end, and the proxy then drops those upstream connections,
# which the next run would count as opened.
throughput_h2load() {
  local name=$1 scen=$2 path=$3 warm=$4; shift 4
  local url=https://127.0.0.1:$PORT$path rep a0 a1 c0 c1 ok done rps fail cpu n
  h2load_run "$@" -n $warm $url   # warm-up
  n=$(awk -v s=$SECS '/^finished in/{n = int($4 * s); print (n < 256 ? 256 : n); exit}' <<<"$H2OUT")
  [ -n "$n" ] || { log "$name $scen: warm-up failed: $(tail -n 3 <<<"$H2OUT" | tr '\n' ' ')"; return; }
  for rep in $(seq $REPEAT); do
    perf_start
    a0=$(accepts); c0=$(cputicks $PID)
    h2load_run "$@" -n $n $url
    c1=$(cputicks $PID); a1=$(accepts)
    # requests: T total, S started, D done, OK succeeded, F failed, ...
    ok=$(awk '/^requests:/{print $8+0}' <<<"$H2OUT")
    perf_stop "$ok"
    done=$(awk '/^requests:/{print $6+0}' <<<"$H2OUT")
    fail=$(awk '/^requests:/{print $10+0}' <<<"$H2OUT")
    rps=$(awk '/^finished in/{print $4+0}' <<<"$H2OUT")
    if [ -z "$ok" ] || [ -z "$rps" ]; then
      log "$name $scen: h2load gave no result: $(tail -n 3 <<<"$H2OUT" | tr '\n' ' ')"; continue
    fi
    # h2load's req/s is done / time; count only the successful ones.
    [ "${done:-0}" -gt 0 ] && rps=$(awk -v r=$rps -v ok=$ok -v d=$done 'BEGIN{printf "%.0f", r*ok/d}')
    cpu=$(awk -v t=$((c1 - c0)) -v n=$ok -v hz=$CLK_TCK 'BEGIN{if (n>0) printf "%.2f", t*1e6/hz/n}')
    record $name $scen rps $rps; record $name $scen failed $fail
    record $name $scen origin_conns $(origin_conns $a0 $a1)
    [ -n "$cpu" ] && record $name $scen cpu_us $cpu
    [ -n "$SYSR" ] && record $name $scen sys_r $SYSR
    [ -n "$CSR" ] && record $name $scen cs_r $CSR
    log "$name $scen #$rep: $n requests, $rps req/s, ${cpu:--} cpu_us/req, ${SYSR:--} sys/r, ${CSR:--} cs/r, $fail failed, $(origin_conns $a0 $a1) origin conns"
  done
}

# hbench_run ARGS...: one hbench run on the load CPU, output in $HBOUT.
hbench_run() {
  HBOUT=$(GOMAXPROCS=1 timeout $((SECS + RATE_SECS + 60)) taskset -c $LOAD_CPU $W/hbench "$@" 2>&1)
}
kv() { tr ' ' '\n' <<<"$HBOUT" | awk -F= -v k=$1 '$1==k{print $2; exit}'; }

# throughput_h3 PROXY: hbench over HTTP/3, 32 connections x 10 streams.
throughput_h3() {
  local name=$1 url=https://127.0.0.1:$PORT/1k rep a0 a1 c0 c1 ok rps fail cpu
  hbench_run -mode load -proto h3 -c 32 -m 10 -n 3200 $url   # warm-up
  for rep in $(seq $REPEAT); do
    perf_start
    a0=$(accepts); c0=$(cputicks $PID)
    hbench_run -mode load -proto h3 -c 32 -m 10 -d ${SECS}s $url
    c1=$(cputicks $PID); a1=$(accepts)
    ok=$(kv ok); rps=$(kv rps); fail=$(kv failed)
    perf_stop "$ok"
    if [ -z "$ok" ]; then log "$name h3: hbench gave no result: $HBOUT"; continue; fi
    cpu=$(awk -v t=$((c1 - c0)) -v n=$ok -v hz=$CLK_TCK 'BEGIN{if (n>0) printf "%.2f", t*1e6/hz/n}')
    record $name h3 rps ${rps%.*}; record $name h3 failed $fail
    record $name h3 origin_conns $(origin_conns $a0 $a1)
    [ -n "$cpu" ] && record $name h3 cpu_us $cpu
    [ -n "$SYSR" ] && record $name h3 sys_r $SYSR
    [ -n "$CSR" ] && record $name h3 cs_r $CSR
    log "$name h3 #$rep: ${rps%.*} req/s, ${cpu:--} cpu_us/req, ${SYSR:--} sys/r, ${CSR:--} cs/r, $fail failed, $(origin_conns $a0 $a1) origin conns"
  done
}

# latency PROXY PROTO CONNS: open loop at $RATE req/s.
latency() {
  local name=$1 proto=$2 c=$3 url=https://127.0.0.1:$PORT/1k rep fail
  hbench_run -mode load -proto $proto -c $c -n 2000 $url   # warm-up
  for rep in $(seq $REPEAT); do
    hbench_run -mode rate -proto $proto -c $c -rate $RATE -d ${RATE_SECS}s $url
    if [ -z "$(kv p99_ms)" ]; then log "$name rate-$proto: hbench gave no result: $HBOUT"; continue; fi
    fail=$(kv failed)
    record $name rate-$proto p50_ms $(kv p50_ms); record $name rate-$proto p99_ms $(kv p99_ms)
    record $name rate-$proto failed $fail
    log "$name rate-$proto #$rep: p50 $(kv p50_ms) ms, p99 $(kv p99_ms) ms, $fail failed"
  done
}

# idle PROXY PROTO: RSS per idle connection, on a fresh proxy each time.
idle() {
  local name=$1 proto=$2 rep r0 r1 i open closed out
  for rep in $(seq $IDLE_REPEAT); do
    start_proxy $name || return
    h2load_run $([ $proto = h1 ] && echo --h1) -c 4 -n 200 https://127.0.0.1:$PORT/1k   # warm-up
    sleep 0.5
    r0=$(status_kb $PID VmRSS)
    # A new output file each run: the wait below must not see an old "ready".
    out=$W/idle-$name-$proto-$rep.out; rm -f $out $out.err
    GOMAXPROCS=1 taskset -c $LOAD_CPU $W/hbench -mode idle -proto $proto -c $IDLE_N -p 100 -sources $IDLE_SOURCES -d 300s \
      https://127.0.0.1:$PORT/1k >$out 2>$out.err & IDLER=$!
    for i in $(seq 1200); do   # 120 s at most
      grep -q '^ready' $out 2>/dev/null && break
      kill -0 $IDLER 2>/dev/null || break
      sleep 0.1
    done
    open=$(awk '/^ready/{sub("open=","",$2); print $2}' $out)
    if [ -z "$open" ] || [ "$open" -eq 0 ]; then
      log "$name idle-$proto: no connection held: $(head -c 300 $out.err)"
      stop_pid $IDLER; IDLER=""; stop_proxy; continue
    fi
    sleep 2   # let lazy allocations settle
    r1=$(status_kb $PID VmRSS)
    kill -TERM $IDLER 2>/dev/null
    for i in $(seq 100); do kill -0 $IDLER 2>/dev/null || break; sleep 0.1; done
    stop_pid $IDLER; IDLER=""
    closed=$(awk '/^done/{for(i=1;i<=NF;i++) if ($i ~ /^closed_by_server=/) {sub(/.*=/,"",$i); print $i}}' $out)
    record $name idle-$proto kb_per_conn $(awk -v a=$r0 -v b=$r1 -v n=$open 'BEGIN{printf "%.2f", (b-a)/n}')
    record $name idle-$proto open $open
    record $name idle-$proto closed ${closed:-0}
    log "$name idle-$proto #$rep: $open open ($(grep -o 'failed=[0-9]*' $out | head -1)), RSS $r0 -> $r1 KiB, ${closed:-?} closed by the proxy while held"
    stop_proxy
  done
}

upload_check() { # what the origin logged for uploads: status, request_length
  awk '$1 == 200 && $2 >= 1048576 {full++} $1 == 200 && $2 < 1048576 {short++} $1 != 200 {other++}
    END {printf "%d %d %d\n", full, short, other}' $W/upload.log >$W/upload.check
  read -r full short other <$W/upload.check
  log "origin upload log: $full answered after reading 1 MiB, $short answered with less read (should be 0), $other cut short by the client side (uploads in flight when a run ends)"
}

# --- Main -----------------------------------------------------------------
mkdir -p "$W" || die "cannot create $W"
install_tools
raise_fd_limit
write_files
: >"$W/runs.tsv"
[ -x "$CADDY" ] || PROXIES=$(tr ' ' '\n' <<<"$PROXIES" | grep -vx caddy | tr '\n' ' ')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "proxies: $PROXIES; scenarios: $SCENARIOS; repeat $REPEAT; ${SECS}s runs; rate $RATE/s; $IDLE_N idle; load average $LOAD_START"

taskset -c $LOAD_CPU nginx -c $W/origin.conf >$W/origin.log 2>&1 & ORIGIN=$!
for i in $(seq 50); do curl -s -o /dev/null --max-time 1 http://127.0.0.1:$ORIGIN_PORT/1k && break; sleep 0.1; done
kill -0 $ORIGIN 2>/dev/null || die "the origin did not start (see $W/origin.err)"

has() { [[ " $SCENARIOS " == *" $1 "* ]]; }
h3able() { [ $1 = caddy ] || [ $1 = hoplite ]; }
for p in $PROXIES; do
  for scen in h2 h1 h3 get1m post1m rate; do
    has $scen || continue
    [ $scen = h3 ] && ! h3able $p && continue
    start_proxy $p || continue
    case $scen in
      h2)     throughput_h2load $p h2 /1k 3200 -c 32 -m 10;;
      h1)     throughput_h2load $p h1 /1k 3200 --h1 -c 64;;
      h3)     throughput_h3 $p;;
      get1m)  throughput_h2load $p get1m /1m 256 -c 16 -m 4;;
      post1m) throughput_h2load $p post1m /upload 256 -c 16 -m 4 -d $W/upload1m;;
      rate)   latency $p h1 64; latency $p h2 32; h3able $p && latency $p h3 32;;
    esac
    if ! kill -0 $PID 2>/dev/null; then
      log "$p exited during $scen (see $W/$p.log)"
    elif [ $scen != rate ]; then
      record $p $scen peak_rss_kb $(status_kb $PID VmHWM)
    fi
    stop_proxy
  done
  if has idle; then idle $p h1; idle $p h2; fi
done
has post1m && upload_check
stop_pid $ORIGIN; ORIGIN=""
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(( $(date +%s) - T0 ))

# --- Report ---------------------------------------------------------------
# Medians per proxy, scenario and metric (the lower middle of an even count).
sort -t$'\t' -k1,1 -k2,2 -k3,3 -k4,4g "$W/runs.tsv" | awk -F'\t' '
  function flush() { if (n) print key "\t" v[int((n + 1) / 2)] "\t" n; n = 0 }
  { k = $1 "\t" $2 "\t" $3; if (k != key) { flush(); key = k } v[++n] = $4 }
  END { flush() }' >"$W/medians.tsv"
cp "$W/runs.tsv" "$OUT/runs.tsv"; cp "$W/medians.tsv" "$OUT/medians.tsv"

cat >"$W/meta.env" <<META
PROXIES="$PROXIES"
SCENARIOS="$SCENARIOS"
REPEAT=$REPEAT SECS=$SECS RATE=$RATE RATE_SECS=$RATE_SECS IDLE_N=$IDLE_N IDLE_REPEAT=$IDLE_REPEAT IDLE_SOURCES=$IDLE_SOURCES
PROXY_CPU=$PROXY_CPU LOAD_CPU=$LOAD_CPU CADDY="$CADDY"
LOAD_START="$LOAD_START" LOAD_END="$LOAD_END" ELAPSED=$ELAPSED
DATE="$(date -u '+%Y-%m-%d %H:%M UTC')"
NOTE="${BENCH_NOTE:-}"
TREE="$TREE"
PERF_WHY=$(printf '%q' "$PERF_WHY")
META
"$ROOT/scripts/bench-report.sh" "$W" "$OUT" || die "report failed"
sed -n '/^## hoplite against/,/^## Throughput/p' "$OUT/results.md" | sed '$d'
log "done in ${ELAPSED}s: $OUT/results.md, $OUT/chart.png"
