#!/usr/bin/env bash
# Score a checkpoint on every validation split the project has, the way README's results table
# reports them: ./dev.sh run scripts/eval_all.sh [WEIGHTS] [OUT_DIR] [extra roadseg-eval args...]
#
# WEIGHTS defaults to the bundled checkpoint; OUT_DIR (default runs/eval/<weights stem>) gets one JSON
# report per split and summary.txt. Needs ../shared/data (see its README); splits that are absent are
# skipped with a line saying so. CPU, one thread, so the figures do not depend on other load.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${ROADSEG_DATA:-$ROOT/../shared/data}"
WEIGHTS="${1:-$ROOT/roadseg_ros/weights/roadseg_default.pt}"
OUT="${2:-$ROOT/runs/eval/$(basename "${WEIGHTS%.pt}")}"
shift $(( $# > 2 ? 2 : $# )) || true
mkdir -p "$OUT"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

run() {  # name, then roadseg-eval arguments
  local name="$1"; shift
  python -m roadseg_ros.tools.evaluate --weights "$WEIGHTS" --device cpu --json "$OUT/$name.json" "$@" \
    > "$OUT/$name.txt" 2>"$OUT/$name.err" || { echo "$name: roadseg-eval failed (see $OUT/$name.err)"; return 0; }
}

[ -d "$DATA/camvid/val" ] && run camvid_val --dataset camvid --data "$DATA/camvid" --split val "$@" \
  || echo "camvid: $DATA/camvid absent, skipped"
[ -d "$DATA/cityscapes_pix2pix/train" ] && run cityscapes_pix2pix_val --dataset cityscapes_pix2pix \
  --data "$DATA/cityscapes_pix2pix" --split val "$@" || echo "cityscapes_pix2pix: absent, skipped"
[ -d "$DATA/cityscapes_pix2pix/train" ] && run cityscapes_pix2pix_val_binary --dataset cityscapes_pix2pix \
  --data "$DATA/cityscapes_pix2pix" --split val --taxonomy road_binary "$@" || true
[ -d "$DATA/idd_lite/leftImg8bit" ] && run idd_lite_val --dataset idd_lite --data "$DATA/idd_lite" --split val "$@" \
  || echo "idd_lite: absent, skipped"
run synthetic_val --dataset synthetic --scenes 100 "$@"
[ -d "$DATA/kitti_road/training" ] && run kitti_training --dataset kitti --data "$DATA/kitti_road" "$@" \
  || echo "kitti_road: absent, skipped"

python - "$OUT" <<'PY' | tee "$OUT/summary.txt"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def get(name):
    p = out / f"{name}.json"
    return json.loads(p.read_text()) if p.is_file() else None
def pct(v):
    return "n/a" if v is None else f"{v:.3f}"
rows = []
r = get("camvid_val")
if r: rows.append(("CamVid val, 11-class mIoU / road IoU", f"{pct(r['mean_iou'])} / {pct(r['road']['iou'])}"))
r = get("cityscapes_pix2pix_val")
if r: rows.append(("Cityscapes val split, road IoU (camvid11 view / binary view)",
                   f"{pct(r['road']['iou'])} / {pct((get('cityscapes_pix2pix_val_binary') or {}).get('road', {}).get('iou'))}"))
r = get("idd_lite_val")
if r: rows.append(("IDD-Lite val split, drivable IoU (recall)", f"{pct(r['road']['iou'])} ({pct(r['road']['recall'])})"))
r = get("synthetic_val")
if r: rows.append(("synthetic val, sky IoU / road IoU", f"{pct(r['per_class_iou'].get('sky'))} / {pct(r['road']['iou'])}"))
r = get("kitti_training")
if r: rows.append(("KITTI 2 labelled images, MaxF", pct(r['kitti']['max_f'])))
first = next((get(n) for n in ("camvid_val", "synthetic_val") if get(n)), None)
print(f"weights: {first['weights'] if first else '?'}  input {first['input_size'] if first else '?'} pixels"
      f"{', shaped like each image (keep_aspect) except cityscapes_pix2pix' if first and first.get('keep_aspect') else ''}")
for k, v in rows:
    print(f"| {k} | {v} |")
PY
