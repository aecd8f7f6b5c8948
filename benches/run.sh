#!/usr/bin/env bash
# Lien benchmarks (issue 3, "Benchmarks"). Every Lien number is paired with a baseline measured in
# the same run, alternating run by run, and the summary reports medians and their ratios.
#
#   (a) publish 1 GiB in place            vs  b3sum --num-threads 1
#   (b) fetch 1 GiB, two processes        vs  curl -o FILE from python3 -m http.server (127.0.0.1)
#   (c) peak RSS of server and fetcher, 256 MiB vs 1 GiB
#   (d) 8 fetchers x 256 MiB at once      ->  publisher uploaded bytes / dataset size
#   (t) cheap tunings: libp2p only (no bulk channel), fetch_requests_per_peer, 4 MiB chunks, output on tmpfs, glibc malloc
#       tunables, swarm with a full mesh
#   (p) PROFILE=1: perf (cpu-clock) profile of one fetch, both sides
# For builds against each other and curl from nginx in one run: benches/fetch_vs_curl.sh.
#
# Usage: benches/run.sh
#   env: RUNS=5 BIG_MIB=1024 SMALL_MIB=256 SWARM_N=8 SWARM_RUNS=3 TUNING=1 TUNING_RUNS=3 PROFILE=0
#        KEEP=0 SKIP_BUILD=0
#        RESULTS_OUT=target/lien-bench-results.jsonl
# Needs: cargo, python3, curl (installed with apt-get if missing), b3sum (cargo install if missing).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-5}
BIG_MIB=${BIG_MIB:-1024}
SMALL_MIB=${SMALL_MIB:-256}
SWARM_N=${SWARM_N:-8}
SWARM_RUNS=${SWARM_RUNS:-3}
TUNING=${TUNING:-1}
TUNING_RUNS=${TUNING_RUNS:-3}
KEEP=${KEEP:-0}
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------------------------------------
# Tools.
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building lien_bench (release)"
    (cd "$ROOT" && cargo build --release -q -p lien-tests --example lien_bench)
fi
BUILT="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/lien_bench"
[ -x "$BUILT" ] || { echo "no binary at $BUILT" >&2; exit 1; }
if ! command -v b3sum >/dev/null; then
    log "installing b3sum"
    cargo install b3sum --locked
fi
if ! command -v curl >/dev/null; then
    log "installing curl"
    apt-get update -qq && apt-get install -y -qq curl
fi
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
TIME=/usr/bin/time
[ -x "$TIME" ] || TIME=""

WORK=$(mktemp -d "${TMPDIR:-/tmp}/lien-bench.XXXXXX")
RES="$WORK/results.jsonl"
# A private copy: the target dir is shared, and a rebuild by someone else mid-run must not change
# the program under test.
BIN="$WORK/lien_bench"
cp "$BUILT" "$BIN"
SPID=""
HPID=""
cleanup() {
    exec 3>&- || true
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null || true
    [ -n "$HPID" ] && kill "$HPID" 2>/dev/null || true
    if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
# Helpers.

# CPU ticks (user+sys) used so far by process $1.
cpu_ticks() { awk '{ s = $0; sub(/.*\) /, "", s); split(s, f, " "); print f[12] + f[13] }' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)

# Runs a command, appends {"tag", "run", "secs", "user", "sys", "maxrss_kib"} to the results.
timed() {
    local tag=$1 run=$2
    shift 2
    if [ -n "$TIME" ]; then
        "$TIME" -o "$WORK/time.out" -f '%e %U %S %M' "$@" >/dev/null
        read -r e u s m <"$WORK/time.out"
    else
        local t0 t1
        t0=$(date +%s.%N)
        "$@" >/dev/null
        t1=$(date +%s.%N)
        e=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
        u=0 s=0 m=0
    fi
    echo "{\"tag\":\"$tag\",\"run\":$run,\"secs\":$e,\"user\":$u,\"sys\":$s,\"maxrss_kib\":$m}" >>"$RES"
}

# Appends a lien_bench JSON line under a tag.
record() { echo "{\"tag\":\"$1\",\"run\":$2,\"r\":$3}" >>"$RES"; }

# Starts `lien_bench serve FILE [opts]`; sets SPID, ADDR, ID. Stopped by stop_server.
start_server() {
    local file=$1
    shift
    rm -f "$WORK/ctl" "$WORK/serve.out" "$WORK/serve.err"
    mkfifo "$WORK/ctl"
    "$BIN" serve "$file" "$@" <"$WORK/ctl" >"$WORK/serve.out" 2>"$WORK/serve.err" &
    SPID=$!
    exec 3>"$WORK/ctl"
    for _ in $(seq 600); do
        [ -s "$WORK/serve.out" ] && break
        kill -0 "$SPID" 2>/dev/null || { cat "$WORK/serve.err" >&2; exit 1; }
        sleep 0.1
    done
    ADDR=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["addr"])' "$WORK/serve.out")
    ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/serve.out")
}

# Closes the server's stdin, waits, records its exit report under tag $1.
stop_server() {
    exec 3>&-
    wait "$SPID" || true
    SPID=""
    record "$1" 0 "$(grep '"mode":"serve"' "$WORK/serve.err" | tail -n1)"
}

FETCH_OUT="$WORK/out"
CURL_OUT="$WORK/curl.out"

# One Lien fetch of the served dataset into a fresh folder; records it and the server's CPU.
lien_fetch() {
    local tag=$1 run=$2
    shift 2
    local c0 c1 out
    rm -rf "$FETCH_OUT"
    sync
    c0=$(cpu_ticks "$SPID")
    out=$("$BIN" fetch "$ADDR" "$ID" "$FETCH_OUT" "$@")
    c1=$(cpu_ticks "$SPID")
    record "$tag" "$run" "$out"
    echo "{\"tag\":\"$tag-server\",\"run\":$run,\"cpu\":$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / t }')}" >>"$RES"
    rm -rf "$FETCH_OUT"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "code: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- node protocol tests 2>/dev/null || echo ' + uncommitted changes in node/protocol/tests')"
log "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r); load $LOAD_START"

# ---------------------------------------------------------------------------------------------
# Data.
mkdir -p "$WORK/data"
log "creating ${BIG_MIB} MiB and ${SMALL_MIB} MiB random files in $WORK"
head -c "${BIG_MIB}M" /dev/urandom >"$WORK/data/big.bin"
head -c "${SMALL_MIB}M" /dev/urandom >"$WORK/data/small.bin"
BIG="$WORK/data/big.bin"
SMALL="$WORK/data/small.bin"
sync

# ---------------------------------------------------------------------------------------------
# (a) Publish vs b3sum --num-threads 1.
log "(a) publish ${BIG_MIB} MiB in place vs b3sum --num-threads 1, $RUNS runs"
b3sum --num-threads 1 "$BIG" >/dev/null # warm the page cache
for i in $(seq "$RUNS"); do
    timed a-b3sum "$i" b3sum --num-threads 1 "$BIG"
    record a-publish "$i" "$("$BIN" publish "$BIG")"
    record a-hashcost "$i" "$("$BIN" hashcost "$BIG")"
    if [ "$TUNING" = 1 ]; then
        record a-publish-4mib "$i" "$("$BIN" publish "$BIG" --chunk-mib 4)"
    fi
done

# ---------------------------------------------------------------------------------------------
# (b) + (c) Fetch between two processes vs curl from python3 -m http.server.
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$WORK/data" "$PORT" >/dev/null 2>&1 &
HPID=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done

curl_fetch() {
    local tag=$1 run=$2 name=$3 c0 c1
    rm -f "$CURL_OUT"
    sync
    c0=$(cpu_ticks "$HPID")
    timed "$tag" "$run" curl -sf -o "$CURL_OUT" "http://127.0.0.1:$PORT/$name"
    c1=$(cpu_ticks "$HPID")
    echo "{\"tag\":\"$tag-server\",\"run\":$run,\"cpu\":$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / t }')}" >>"$RES"
    rm -f "$CURL_OUT"
}

for size in big small; do
    file="$WORK/data/$size.bin"
    log "(b,c) fetch $size.bin: lien vs curl, $RUNS runs each"
    start_server "$file"
    for i in $(seq "$RUNS"); do
        curl_fetch "b-curl-$size" "$i" "$size.bin"
        lien_fetch "b-lien-$size" "$i"
    done
    stop_server "c-serve-$size"
done
log "(b) extra baselines: curl to /dev/null, curl -o FILE then fsync"
for i in $(seq "$RUNS"); do
    timed b-curl-null "$i" curl -sf -o /dev/null "http://127.0.0.1:$PORT/big.bin"
    rm -f "$WORK/curl.out"
    sync
    timed b-curl-sync "$i" sh -c "curl -sf -o '$WORK/curl.out' 'http://127.0.0.1:$PORT/big.bin' && sync '$WORK/curl.out'"
    rm -f "$WORK/curl.out"
done

# ---------------------------------------------------------------------------------------------
# (t) Cheap tunings reachable without touching node code.
if [ "$TUNING" = 1 ]; then
    log "(t) fetch tunings: libp2p only (no bulk channel), fetch_requests_per_peer 1 / 16, 4 MiB chunks"
    start_server "$BIG"
    for i in $(seq "$TUNING_RUNS"); do
        curl_fetch "t-curl" "$i" big.bin
        lien_fetch "t-nobulk" "$i" --no-bulk
        lien_fetch "t-rpp1" "$i" --requests-per-peer 1
        lien_fetch "t-rpp16" "$i" --requests-per-peer 16
    done
    # Both sides writing to tmpfs instead of ext4: how much of the gap is the disk (fsync, page
    # cache writes)?
    SHM=/dev/shm
    if [ -d "$SHM" ] && [ "$(df -Pk "$SHM" | awk 'NR == 2 { print $4 }')" -gt $((3 * BIG_MIB * 1024)) ]; then
        log "(t) fetch to tmpfs ($SHM): lien vs curl"
        SHMDIR=$(mktemp -d "$SHM/lien-bench.XXXXXX")
        FETCH_OUT="$SHMDIR/out" CURL_OUT="$SHMDIR/curl.out"
        for i in $(seq "$TUNING_RUNS"); do
            curl_fetch "t-shm-curl" "$i" big.bin
            lien_fetch "t-shm-lien" "$i"
        done
        FETCH_OUT="$WORK/out" CURL_OUT="$WORK/curl.out"
        rm -rf "$SHMDIR"
    fi
    stop_server "t-serve-1mib"
    start_server "$BIG" --chunk-mib 4
    for i in $(seq "$TUNING_RUNS"); do
        curl_fetch "t-curl4" "$i" big.bin
        lien_fetch "t-4mib" "$i"
    done
    stop_server "t-serve-4mib"
    # glibc malloc keeping freed 1 MiB buffers instead of returning them to the kernel (both
    # sides): measures what the per-response buffer churn (page faults, zeroing) costs.
    log "(t) glibc malloc tunables on both sides"
    MALLOC_TUNED="glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824"
    GLIBC_TUNABLES=$MALLOC_TUNED start_server "$BIG"
    for i in $(seq "$TUNING_RUNS"); do
        curl_fetch "t-curl-malloc" "$i" big.bin
        GLIBC_TUNABLES=$MALLOC_TUNED lien_fetch "t-malloc" "$i"
        GLIBC_TUNABLES=$MALLOC_TUNED lien_fetch "t-malloc-rpp16" "$i" --requests-per-peer 16
    done
    stop_server "t-serve-malloc"
fi
kill "$HPID" 2>/dev/null || true
wait "$HPID" 2>/dev/null || true
HPID=""

# ---------------------------------------------------------------------------------------------
# (p) Optional CPU profile of one 1 GiB fetch, both sides (PROFILE=1; needs a working `perf`).
if [ "${PROFILE:-0}" = 1 ] && perf record -q -e cpu-clock -o /dev/null true >/dev/null 2>&1; then
    log "(p) perf profile of one fetch (cpu-clock sampling)"
    start_server "$BIG"
    perf record -q -e cpu-clock -F 1999 -o "$WORK/server.perf" -p "$SPID" >/dev/null 2>&1 &
    PPID_SERVER=$!
    sleep 0.5
    rm -rf "$FETCH_OUT"
    perf record -q -e cpu-clock -F 1999 -o "$WORK/fetch.perf" -- "$BIN" fetch "$ADDR" "$ID" "$FETCH_OUT" >/dev/null 2>&1
    kill -INT "$PPID_SERVER"
    wait "$PPID_SERVER" || true
    rm -rf "$FETCH_OUT"
    stop_server "p-serve"
    for side in fetch server; do
        perf report -i "$WORK/$side.perf" --no-children --sort dso,symbol --stdio >"$WORK/$side.report" 2>/dev/null || true
        grep -v '^#' "$WORK/$side.report" | grep -v '^$' | cut -c1-110 | head -25 \
            >"${RESULTS_OUT:-$ROOT/target/lien-bench-results.jsonl}.$side-profile.txt" || true
    done
    log "profiles: ${RESULTS_OUT:-$ROOT/target/lien-bench-results.jsonl}.{fetch,server}-profile.txt"
fi

# ---------------------------------------------------------------------------------------------
# (d) Swarm: N fetchers of one SMALL_MIB dataset at once.
log "(d) swarm: $SWARM_N fetchers x $SMALL_MIB MiB, $SWARM_RUNS runs"
for i in $(seq "$SWARM_RUNS"); do
    record d-swarm "$i" "$("$BIN" swarm "$SWARM_N" "$SMALL_MIB")"
    if [ "$TUNING" = 1 ]; then
        record d-swarm-mesh "$i" "$("$BIN" swarm "$SWARM_N" "$SMALL_MIB" --mesh)"
    fi
done

# ---------------------------------------------------------------------------------------------
# Summary.
log "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (at the start: $LOAD_START)"
RESULTS_OUT=${RESULTS_OUT:-$ROOT/target/lien-bench-results.jsonl}
cp "$RES" "$RESULTS_OUT" 2>/dev/null || true
python3 - "$RES" "$BIG_MIB" "$SMALL_MIB" "$SWARM_N" "$RESULTS_OUT" <<'EOF'
import json, statistics, sys
from collections import defaultdict

res, big_mib, small_mib, swarm_n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = defaultdict(list)
for line in open(res):
    line = line.strip()
    if line:
        rows[(d := json.loads(line))["tag"]].append(d)

GB = 1e9
GIB = 1 << 30
med = statistics.median

def base_gbps(tag, mib):
    return med([mib * 2**20 / r["secs"] / GB for r in rows[tag]]) if rows.get(tag) else float("nan")

def lien(tag, key):
    return med([r["r"][key] for r in rows[tag]]) if rows.get(tag) else float("nan")

def cpu_per_gib(tag, mib, lien_side):
    if not rows.get(tag):
        return float("nan")
    if lien_side:
        return med([(r["r"]["cpu_user"] + r["r"]["cpu_sys"]) / (mib / 1024) for r in rows[tag]])
    return med([(r["user"] + r["sys"]) / (mib / 1024) for r in rows[tag]])

def server_cpu(tag, mib):
    t = tag + "-server"
    return med([r["cpu"] / (mib / 1024) for r in rows[t]]) if rows.get(t) else float("nan")

out = []
def row(name, lien_v, base_v, ratio, must, goal, ok_must, ok_goal):
    verdict = "goal met" if ok_goal else ("pass" if ok_must else "MISSED")
    out.append((name, lien_v, base_v, ratio, must, goal, verdict))

# (a)
pub = lien("a-publish", "gbps")
b3 = base_gbps("a-b3sum", big_mib)
ra = pub / b3
row(f"(a) publish {big_mib} MiB in place", f"{pub:.2f} GB/s", f"b3sum -t1 {b3:.2f} GB/s", f"{ra:.2f}x",
    ">=0.7x", ">=1.0x", ra >= 0.7, ra >= 1.0)
# (b)
fb = lien("b-lien-big", "gbps")
cb = base_gbps("b-curl-big", big_mib)
rb = fb / cb
row(f"(b) fetch {big_mib} MiB, loopback, to disk", f"{fb:.3f} GB/s", f"curl -o {cb:.3f} GB/s", f"{rb:.2f}x",
    ">=0.5x", ">=0.8x", rb >= 0.5, rb >= 0.8)
# (c)
def hwm(tag):
    return max(r["r"]["vm_hwm_kib"] for r in rows[tag]) / 1024 if rows.get(tag) else float("nan")
for side, small_tag, big_tag in [("server", "c-serve-small", "c-serve-big"), ("fetcher", "b-lien-small", "b-lien-big")]:
    s, b = hwm(small_tag), hwm(big_tag)
    growth = b / s
    row(f"(c) peak RSS {side}, {small_mib} MiB -> {big_mib} MiB", f"{s:.0f} -> {b:.0f} MiB", "-", f"{growth:.2f}x growth",
        "no growth", "<100 MiB", growth < 1.25, growth < 1.25 and b < 100)
# (d)
up = lien("d-swarm", "upload_ratio")
row(f"(d) swarm {swarm_n} x {small_mib} MiB: publisher upload / size", f"{up:.2f}", f"portal = {swarm_n}", f"{up:.2f}",
    "<=3", "<=2", up <= 3, up <= 2)

w = [max(len(str(r[i])) for r in out + [("", "lien", "baseline", "ratio", "must", "goal", "verdict")]) for i in range(7)]
hdr = ("benchmark", "lien", "baseline (same run)", "ratio", "must", "goal", "verdict")
w = [max(w[i], len(hdr[i])) for i in range(7)]
line = lambda r: "| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(r)) + " |"
print()
print(line(hdr))
print("|" + "|".join("-" * (x + 2) for x in w) + "|")
for r in out:
    print(line(r))

print("\nDetails (medians):")
print(f"  publish: {lien('a-publish', 'secs'):.3f} s, cpu {cpu_per_gib('a-publish', big_mib, True):.2f} s/GiB; "
      f"b3sum -t1: {med([r['secs'] for r in rows['a-b3sum']]):.3f} s")
if rows.get("a-hashcost"):
    h = lambda k: med([r["r"][k] for r in rows["a-hashcost"]])
    print(f"  where publish time goes: hash_reader 1 thread {h('hash_reader_1_secs'):.3f} s, {rows['a-hashcost'][0]['r']['threads']} threads "
          f"{h('hash_reader_n_secs'):.3f} s, of which sequential read alone {h('read_only_secs'):.3f} s; "
          f"prototype parallel pread+hash {h('parallel_pread_hash_secs'):.3f} s = {h('parallel_pread_hash_gbps'):.2f} GB/s "
          f"({h('parallel_pread_hash_gbps') / b3:.2f}x b3sum)")
if rows.get("a-publish-4mib"):
    print(f"  publish with 4 MiB chunks: {lien('a-publish-4mib', 'gbps'):.2f} GB/s ({lien('a-publish-4mib', 'gbps') / b3:.2f}x b3sum)")
for size, mib in [("big", big_mib), ("small", small_mib)]:
    print(f"  fetch {mib} MiB: lien {lien(f'b-lien-{size}', 'gbps'):.3f} GB/s "
          f"(data phase {lien(f'b-lien-{size}', 'transfer_gbps'):.3f} GB/s, first byte after {lien(f'b-lien-{size}', 'first_byte_secs'):.3f} s), "
          f"curl {base_gbps(f'b-curl-{size}', mib):.3f} GB/s")
    print(f"     CPU s/GiB: lien fetcher {cpu_per_gib(f'b-lien-{size}', mib, True):.2f}, lien server {server_cpu(f'b-lien-{size}', mib):.2f}; "
          f"curl {cpu_per_gib(f'b-curl-{size}', mib, False):.2f}, python server {server_cpu(f'b-curl-{size}', mib):.2f}")
if rows.get("b-curl-null"):
    print(f"  curl to /dev/null: {base_gbps('b-curl-null', big_mib):.3f} GB/s; curl -o FILE + fsync: {base_gbps('b-curl-sync', big_mib):.3f} GB/s "
          f"(lien / curl+fsync = {fb / base_gbps('b-curl-sync', big_mib):.2f}x)")
for t in ["c-serve-small", "c-serve-big"]:
    if rows.get(t):
        r = rows[t][0]["r"]
        print(f"  {t}: VmHWM {r['vm_hwm_kib'] / 1024:.0f} MiB (after publish {r['vm_hwm_kib_after_publish'] / 1024:.0f} MiB), served {r['served_bytes'] / GIB:.2f} GiB")
if rows.get("t-nobulk"):
    c = base_gbps("t-curl", big_mib)
    print(f"  libp2p only (bulk_transfer = false): {lien('t-nobulk', 'gbps'):.3f} GB/s ({lien('t-nobulk', 'gbps') / c:.2f}x curl {c:.3f}), "
          f"CPU s/GiB fetcher {cpu_per_gib('t-nobulk', big_mib, True):.2f}, server {server_cpu('t-nobulk', big_mib):.2f}")
if rows.get("t-rpp1"):
    c = base_gbps("t-curl", big_mib)
    print(f"  tuning (same server, curl {c:.3f} GB/s): requests_per_peer=1 {lien('t-rpp1', 'gbps'):.3f} GB/s ({lien('t-rpp1', 'gbps') / c:.2f}x), "
          f"=16 {lien('t-rpp16', 'gbps'):.3f} GB/s ({lien('t-rpp16', 'gbps') / c:.2f}x)")
if rows.get("t-shm-lien"):
    c = base_gbps("t-shm-curl", big_mib)
    l = lien("t-shm-lien", "gbps")
    print(f"  tmpfs output (no disk): lien {l:.3f} GB/s, curl {c:.3f} GB/s ({l / c:.2f}x); "
          f"CPU s/GiB lien fetcher {cpu_per_gib('t-shm-lien', big_mib, True):.2f}, server {server_cpu('t-shm-lien', big_mib):.2f}")
if rows.get("t-malloc"):
    c = base_gbps("t-curl-malloc", big_mib)
    print(f"  tuning: glibc malloc tunables (both sides) {lien('t-malloc', 'gbps'):.3f} GB/s ({lien('t-malloc', 'gbps') / c:.2f}x curl {c:.3f}), "
          f"+ requests_per_peer=16 {lien('t-malloc-rpp16', 'gbps'):.3f} GB/s ({lien('t-malloc-rpp16', 'gbps') / c:.2f}x); "
          f"CPU s/GiB fetcher {cpu_per_gib('t-malloc', big_mib, True):.2f}, server {server_cpu('t-malloc', big_mib):.2f}")
if rows.get("t-4mib"):
    c = base_gbps("t-curl4", big_mib)
    print(f"  tuning: 4 MiB chunks (4 MiB requests) {lien('t-4mib', 'gbps'):.3f} GB/s ({lien('t-4mib', 'gbps') / c:.2f}x curl {c:.3f})")
for t in ["d-swarm", "d-swarm-mesh"]:
    if rows.get(t):
        rs = [r["r"] for r in rows[t]]
        print(f"  {t}: upload ratio runs {[round(r['upload_ratio'], 2) for r in rs]}, "
              f"total {med([r['total_secs'] for r in rs]):.1f} s, "
              f"from other fetchers {med([r['from_other_fetchers'] / (r['bytes'] * r['fetchers']) for r in rs]) * 100:.0f}%, "
              f"peers at start {rs[0]['peers_at_start']}")
print(f"\nraw results: {sys.argv[5]}")
EOF
