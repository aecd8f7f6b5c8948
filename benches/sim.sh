#!/usr/bin/env bash
# lien-sim benchmark (issue 6): model-mode wall time at 10,000 nodes (must be < 60 s, goal 30 s)
# and the largest real-code N that runs on this machine (one publish + everyone fetches).
#
# Usage: benches/sim.sh        env: REAL_NS="16 32 64 128 300" REAL_MIB=8 REAL_BUDGET_S=300
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
REAL_NS=${REAL_NS:-"16 32 64 128 300"}
REAL_MIB=${REAL_MIB:-8}
REAL_BUDGET_S=${REAL_BUDGET_S:-300}
OUT=${OUT:-target/lien-sim-bench}
mkdir -p "$OUT"
cargo build --release -p lien-sim >&2
BIN=target/release/lien-sim

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

echo "== real-code mode: N real lien-node nodes on 127.0.0.1, ${REAL_MIB} MiB, everyone fetches"
largest=0
for n in $REAL_NS; do
  cat > "$OUT/real-$n.toml" <<TOML
[sim]
name = "real-$n"
mode = "real"
[topology]
builtin = "random-regular"
nodes = $n
degree = 6
[workload]
publisher = "#0"
dataset_mib = $REAL_MIB
TOML
  start=$(date +%s)
  if timeout "$REAL_BUDGET_S" "$BIN" run "$OUT/real-$n.toml" --out "$OUT/real-$n" > "$OUT/real-$n.json" 2> "$OUT/real-$n.err"; then
    end=$(date +%s)
    python3 - "$OUT/real-$n.json" "$((end - start))" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"N={d['nodes']}: {sys.argv[2]} s wall, announce max {d['announce_max_s']['mean']:.3f} s, "
      f"fetch p50 {d['fetch_p50_s']['mean']:.2f} s, max {d['fetch_max_s']['mean']:.2f} s, "
      f"publisher uploaded {d['publisher_upload_copies']['mean']:.1f} copies")
PY
    largest=$n
  else
    echo "N=$n: did not finish within ${REAL_BUDGET_S} s (see $OUT/real-$n.err)"
    break
  fi
done
echo "largest real-code N within ${REAL_BUDGET_S} s: $largest (wall clock, no virtual time: see docs/simulation.md)"
