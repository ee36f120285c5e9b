#!/usr/bin/env bash
# evalrow.sh MODEL [BEAM...]: one markdown row per beam on the 1,000 held-out scenes of seed 2026
m=$1; shift
for b in "${@:-3 1}"; do
  out=$(mktemp -d)
  /work/main/build/imcap eval --model "$m" --data /work/train14/held2026/dataset.json --images /work/train14/held2026 \
      --split test --beam $b -o "$out" -j ${J:-2} >/dev/null 2>&1 || { echo "eval failed: $m" >&2; continue; }
  /usr/bin/python3 - "$out/metrics.json" "$m" "$b" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); o = j["objects"]; s = j.get("scores", j)
def f(v): return "-" if v is None else f"{v:.3f}"
print(f"| {sys.argv[2]} | {sys.argv[3]} | {f(o['f1'])} | {f(o['pointing'])} | {f(o['attention_mass'])} | {f(o['relations'])} ({o['n_relations']}) | {f(o['relations_left_right'])} | {f(o['relations_above_below'])} |")
PY
  rm -rf "$out"
done
