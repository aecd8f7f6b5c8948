#!/usr/bin/env bash
# One 1 GiB loopback fetch to disk by one or more `lien_bench` builds, alternated with
# `curl -o FILE` from nginx (python3 -m http.server when nginx is not installed), in the same
# run: the measurement behind BENCHMARKS.md's bulk-channel tables (issue 13).
#
# Every build serves the same file at once (`lien_bench serve`); each round fetches once with
# curl before each build's fetch, builds in the given order in odd rounds and reversed in even
# ones, so slow phases of a shared machine hit all of them.
# Reported per build: median GB/s, ratio to the median curl of the same run, CPU-seconds per GiB
# of the fetcher and of the server (user+sys), peak RSS of both.
#
# Usage: benches/fetch_vs_curl.sh LABEL=PATH/TO/lien_bench [LABEL=PATH ...]
#   env: ROUNDS=3 MIB=1024 KEEP=0 PROFILE=0 (1: also a perf profile of one fetch per build)
#        OUT_DIR (default: a fresh directory under TMPDIR; results.jsonl and the summary)
# Build a binary with: cargo build --release -p lien-tests --example lien_bench, then copy it
# out of the target directory (shared targets get rebuilt by others).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
MIB=${MIB:-1024}
KEEP=${KEEP:-0}
PROFILE=${PROFILE:-0}
[ $# -ge 1 ] || { sed -n '2,17p' "$0" >&2; exit 2; }

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
WORK=${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/lien-fetch-vs-curl.XXXXXX")}
mkdir -p "$WORK/data" "$WORK/bin"
RES="$WORK/results.jsonl"
: >"$RES"
CLK_TCK=$(getconf CLK_TCK)
LABELS=()
declare -A SPID ADDR ID
HPIDS=""
cleanup() {
    for l in "${LABELS[@]}"; do
        [ -n "${SPID[$l]:-}" ] && kill "${SPID[$l]}" 2>/dev/null || true
    done
    [ -n "$HPIDS" ] && kill $HPIDS 2>/dev/null || true
    if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK/data" "$WORK/out" "$WORK/curl.out"; fi
}
trap cleanup EXIT

# CPU ticks (user+sys) used so far by the processes given.
cpu_ticks() {
    local t=0 p
    for p in "$@"; do
        t=$((t + $(awk '{ s = $0; sub(/.*\) /, "", s); split(s, f, " "); print f[12] + f[13] }' "/proc/$p/stat")))
    done
    echo "$t"
}
secs_of() { awk -v a="$1" -v b="$2" -v t="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / t }'; }

log "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)"
log "TLS ULPs in this kernel: $(cat /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null || echo '?')"
echo "{\"load_start\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >>"$RES"
log "creating a ${MIB} MiB random file"
head -c "${MIB}M" /dev/urandom >"$WORK/data/big.bin"
sync

# The web server.
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
NGINX=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
if [ -n "$NGINX" ]; then
    BASELINE="nginx $($NGINX -v 2>&1 | sed 's/.*nginx\///')"
    mkdir -p "$WORK/nginx"
    cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 64; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path $WORK/nginx;
    proxy_temp_path $WORK/nginx;
    fastcgi_temp_path $WORK/nginx;
    uwsgi_temp_path $WORK/nginx;
    scgi_temp_path $WORK/nginx;
    server { listen 127.0.0.1:$PORT; root $WORK/data; }
}
EOF
    "$NGINX" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
    HPIDS=$!
else
    BASELINE="python3 -m http.server"
    python3 -m http.server --bind 127.0.0.1 --directory "$WORK/data" "$PORT" >/dev/null 2>&1 &
    HPIDS=$!
fi
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/" -r 0-0 && break; sleep 0.1; done
# nginx serves from its worker process: count the master and its children.
HPIDS="$HPIDS $(pgrep -P "${HPIDS%% *}" | xargs || true)"
log "baseline: curl -o FILE from $BASELINE (pids $HPIDS)"
echo "{\"baseline\":\"$BASELINE\"}" >>"$RES"

# The Lien servers, one per build.
for spec in "$@"; do
    label=${spec%%=*}
    bin=${spec#*=}
    [ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 1; }
    cp "$bin" "$WORK/bin/$label"
    LABELS+=("$label")
    rm -f "$WORK/ctl-$label"
    mkfifo "$WORK/ctl-$label"
    # stdin a FIFO the server itself holds open for writing: it never sees end of input and
    # stops on SIGTERM (and no other process inherits a writer to it).
    "$WORK/bin/$label" serve "$WORK/data/big.bin" <>"$WORK/ctl-$label" >"$WORK/serve-$label.out" 2>"$WORK/serve-$label.err" &
    SPID[$label]=$!
    for _ in $(seq 1200); do
        [ -s "$WORK/serve-$label.out" ] && break
        kill -0 "${SPID[$label]}" 2>/dev/null || { cat "$WORK/serve-$label.err" >&2; exit 1; }
        sleep 0.1
    done
    ADDR[$label]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["addr"])' "$WORK/serve-$label.out")
    ID[$label]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/serve-$label.out")
    log "serving with $label (pid ${SPID[$label]})"
done

curl_fetch() {
    local round=$1 c0 c1
    rm -f "$WORK/curl.out"
    sync
    c0=$(cpu_ticks $HPIDS)
    /usr/bin/time -o "$WORK/time.out" -f '%e %U %S %M' curl -sf -o "$WORK/curl.out" "http://127.0.0.1:$PORT/big.bin"
    c1=$(cpu_ticks $HPIDS)
    read -r e u s m <"$WORK/time.out"
    echo "{\"tag\":\"curl\",\"round\":$round,\"secs\":$e,\"cpu\":$(awk -v u="$u" -v s="$s" 'BEGIN { print u + s }'),\"server_cpu\":$(secs_of "$c0" "$c1"),\"maxrss_kib\":$m}" >>"$RES"
    rm -f "$WORK/curl.out"
}

lien_fetch() {
    local label=$1 round=$2 c0 c1 out
    rm -rf "$WORK/out"
    sync
    c0=$(cpu_ticks "${SPID[$label]}")
    out=$("$WORK/bin/$label" fetch "${ADDR[$label]}" "${ID[$label]}" "$WORK/out")
    c1=$(cpu_ticks "${SPID[$label]}")
    echo "{\"tag\":\"$label\",\"round\":$round,\"server_cpu\":$(secs_of "$c0" "$c1"),\"r\":$out}" >>"$RES"
    rm -rf "$WORK/out"
}

for round in $(seq "$ROUNDS"); do
    log "round $round/$ROUNDS (load $(cut -d' ' -f1 /proc/loadavg))"
    # Odd rounds in the order given, even rounds reversed: no build always follows another.
    order=("${LABELS[@]}")
    if [ $((round % 2)) = 0 ]; then
        order=()
        for ((k = ${#LABELS[@]} - 1; k >= 0; k--)); do order+=("${LABELS[$k]}"); done
    fi
    for label in "${order[@]}"; do
        curl_fetch "$round"
        lien_fetch "$label" "$round"
    done
done

if [ "$PROFILE" = 1 ] && command -v perf >/dev/null; then
    for label in "${LABELS[@]}"; do
        log "perf profile of one fetch with $label"
        perf record -q -e cpu-clock -F 1999 -o "$WORK/$label-server.perf" -p "${SPID[$label]}" >/dev/null 2>&1 &
        ppid=$!
        sleep 0.5
        rm -rf "$WORK/out"
        perf record -q -e cpu-clock -F 1999 -o "$WORK/$label-fetch.perf" -- \
            "$WORK/bin/$label" fetch "${ADDR[$label]}" "${ID[$label]}" "$WORK/out" >/dev/null
        kill -INT "$ppid"
        wait "$ppid" || true
        rm -rf "$WORK/out"
        for side in fetch server; do
            perf report -i "$WORK/$label-$side.perf" --no-children --sort symbol --stdio 2>/dev/null |
                grep '%' | cut -c1-110 | head -30 >"$WORK/$label-$side-profile.txt" || true
        done
    done
fi

# Servers' peak RSS, then stop them.
for label in "${LABELS[@]}"; do
    hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/${SPID[$label]}/status")
    echo "{\"tag\":\"$label-server\",\"vm_hwm_kib\":$hwm}" >>"$RES"
    kill -TERM "${SPID[$label]}"
    wait "${SPID[$label]}" || true
    SPID[$label]=""
done
echo "{\"load_end\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >>"$RES"
log "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$RES" "$MIB" "${LABELS[@]}" <<'EOF' | tee "$WORK/summary.txt"
import json, statistics, sys
res, mib, labels = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = [json.loads(l) for l in open(res) if l.strip()]
meta = {k: v for r in rows for k, v in r.items() if k in ("load_start", "load_end", "baseline")}
med = statistics.median
gib = mib / 1024
gb = mib * 2**20 / 1e9
curl = [r for r in rows if r.get("tag") == "curl"]
c_gbps = [gb / r["secs"] for r in curl]
c_med = med(c_gbps)
print(f"baseline: curl -o FILE from {meta.get('baseline')}; load {meta.get('load_start')} -> {meta.get('load_end')}")
print(f"| | runs (GB/s) | median GB/s | ratio to curl | fetcher CPU-s/GiB | server CPU-s/GiB | both | peak RSS fetcher / server (MiB) |")
print(f"|---|---|---|---|---|---|---|---|")
def line(name, runs, fc, sc, rss):
    m = med(runs)
    print(f"| {name} | {', '.join(f'{x:.3f}' for x in runs)} | {m:.3f} | {m / c_med:.2f}x | {fc:.2f} | {sc:.2f} | {fc + sc:.2f} | {rss} |")
line("curl", c_gbps, med([r["cpu"] / gib for r in curl]), med([r["server_cpu"] / gib for r in curl]),
     f"{max(r['maxrss_kib'] for r in curl) / 1024:.0f} / -")
for label in labels:
    rs = [r for r in rows if r.get("tag") == label]
    srv = [r for r in rows if r.get("tag") == f"{label}-server"]
    runs = [r["r"]["gbps"] for r in rs]
    fc = med([(r["r"]["cpu_user"] + r["r"]["cpu_sys"]) / gib for r in rs])
    sc = med([r["server_cpu"] / gib for r in rs])
    rss = f"{max(r['r']['vm_hwm_kib'] for r in rs) / 1024:.0f} / {srv[0]['vm_hwm_kib'] / 1024:.0f}" if srv else "?"
    line(label, runs, fc, sc, rss)
    print(f"|   {label} user/sys (fetcher, medians) | {med([r['r']['cpu_user'] for r in rs]):.2f} / {med([r['r']['cpu_sys'] for r in rs]):.2f} s |||||||")
EOF
log "results: $RES"
