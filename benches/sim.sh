#!/usr/bin/env bash
# lien-sim benchmark (issue 6): model-mode wall time at 10,000 nodes (must be < 60 s, goal 30 s)
# and the largest N the real-code mode (real lien-node nodes on the simulated network, virtual
# time) runs for a 10-minute virtual scenario within 5 minutes of wall time (must reach 300,
# goal 1,000).
#
# Real-code scenario: random 6-regular overlay, 10 ms one way (±10% jitter), 100 Mbit/s up and
# down everywhere, one publisher, a 4 MiB dataset in 256 KiB chunks, the node's own upload slots
# (4) and request timeout (30 s), everyone fetches on announcement, 600 s of virtual time. Stops at the first N over the budget.
#
# Usage: benches/sim.sh        env: REAL_NS="64 128 300 500 700 1000" REAL_MIB=4 REAL_BUDGET_S=300
#                                   REAL_VIRTUAL_S=600 SKIP_MODEL=1 LIEN_SIM_BIN=path
# The simulations workspace is built in its dev profile (every crate at opt-level 2, see
# simulations/Cargo.toml), in $CARGO_TARGET_DIR or simulations/target.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
REAL_NS=${REAL_NS:-"64 128 300 500 700 1000"}
REAL_MIB=${REAL_MIB:-4}
REAL_BUDGET_S=${REAL_BUDGET_S:-300}
REAL_VIRTUAL_S=${REAL_VIRTUAL_S:-600}
OUT=${OUT:-target/lien-sim-bench}
mkdir -p "$OUT"
if [ -n "${LIEN_SIM_BIN:-}" ]; then
  BIN=$LIEN_SIM_BIN # a binary built earlier (e.g. a copy, so that builds meanwhile do not replace it)
else
  cargo build --manifest-path simulations/Cargo.toml --bins >&2
  BIN=${CARGO_TARGET_DIR:-simulations/target}/debug/lien-sim
fi
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), commit $(git rev-parse --short HEAD)"

if [ -z "${SKIP_MODEL:-}" ]; then
  echo "== model mode, 10,000 nodes (simulations/scenarios/scale-10k.toml)"
  for seed in 1 2 3; do
    start=$(date +%s.%N)
    "$BIN" run simulations/scenarios/scale-10k.toml --out "$OUT/scale-10k-$seed" --seed "$seed" > "$OUT/scale-10k-$seed.json" 2>/dev/null
    end=$(date +%s.%N)
    python3 - "$OUT/scale-10k-$seed.json" "$start" "$end" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
wall = float(sys.argv[3]) - float(sys.argv[2])
print(f"seed {d['seed']}: process wall {wall:.2f} s (model {d['wall_s']:.2f} s), {d['events_processed']} events, "
      f"all fetched by {d['fetch_p2p']['completion_s']['max']:.2f} s virtual (bound {d['fluid_bound_s']:.2f} s)")
PY
  done
fi

echo "== real-code mode: N lien-node nodes on the simulated network, ${REAL_VIRTUAL_S} s virtual, ${REAL_MIB} MiB, everyone fetches"
largest=0
for n in $REAL_NS; do
  cat > "$OUT/real-$n.toml" <<TOML
[sim]
name = "real-$n"
mode = "real"
duration_s = $REAL_VIRTUAL_S
[topology]
builtin = "random-regular"
nodes = $n
degree = 6
latency_ms = 10
up_mbps = 100
down_mbps = 100
[protocol.transfer]
chunk_kib = 256
# A Lien node's own defaults (max_concurrent_uploads, request_timeout_secs).
max_inflight_serve = 4
request_timeout_ms = 30000
[workload]
publisher = "#0"
fetchers = "all"
dataset_mib = $REAL_MIB
TOML
  start=$(date +%s.%N)
  if /usr/bin/time -f "%M" -o "$OUT/real-$n.rss" timeout "$REAL_BUDGET_S" "$BIN" run "$OUT/real-$n.toml" --out "$OUT/real-$n" > "$OUT/real-$n.json" 2> "$OUT/real-$n.err"; then
    end=$(date +%s.%N)
    python3 - "$OUT/real-$n.json" "$start" "$end" "$OUT/real-$n.rss" "$OUT/real-$n/real_runs.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
r = json.load(open(sys.argv[5]))[0]
wall = float(sys.argv[3]) - float(sys.argv[2])
rss = int(open(sys.argv[4]).read().split()[-1]) / 1024
deg = [len(c) for c in r["connections"]]
deg_end = [len(c) for c in r["connections_end"]]
done = [x for x in r["fetch_s"] if x is not None]
print(f"N={d['nodes']}: {wall:.1f} s wall for {r['virtual_s']:.0f} s virtual (start-up {r['startup_wall_s']:.1f} s wall), "
      f"peak RSS {rss:.0f} MiB, connections per node {sum(deg)/len(deg):.1f} at time 0 (max {max(deg)}), "
      f"{sum(deg_end)/len(deg_end):.1f} at the end (max {max(deg_end)}), "
      f"announcement {d['announce_delivered_fraction']['mean']*100:.0f}% of nodes, "
      f"fetches {len(done)}/{len(r['fetch_s'])} done ({r['verified']} verified), "
      f"publisher uploaded {d['publisher_upload_copies']['mean']:.1f} copies")
PY
    largest=$n
  else
    end=$(date +%s.%N)
    echo "N=$n: did not finish ${REAL_VIRTUAL_S} virtual seconds within ${REAL_BUDGET_S} s of wall time; last progress:"
    grep -v '^$' "$OUT/real-$n.err" | tail -2
    break
  fi
done
echo "largest real-code N for ${REAL_VIRTUAL_S} virtual seconds within ${REAL_BUDGET_S} s wall: $largest"
