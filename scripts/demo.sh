#!/usr/bin/env bash
# The main job end to end on the embedded synthetic world, sized for a laptop CPU (a few minutes):
# synthetic chips -> Ray Train (2 workers) -> synthetic region (RGB COG + DEM COG in another CRS)
# -> lsmap map (Ray Data) -> COG, polygons, quicklook, and the region's score against the truth.
# Safe to run twice: training and mapping resume from what the first run finished.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-demo-out}
LSMAP=.venv/bin/lsmap
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}

[ -d "$OUT/chips/landslide" ] || $LSMAP synth chips "$OUT/chips" --count 400 --size 64 --seed 0
$LSMAP train --data "$OUT/chips" --out "$OUT/run" --arch unetpp_ca --loss bce+dice \
    --epochs 6 --workers 2 --batch-size 8 --lr 1e-3 --size 64 --base-width 8 --depth 3 \
    --dropout 0.1 --resolution-m 1.0
$LSMAP evaluate --model "$OUT/run" --data "$OUT/chips" --split test
[ -f "$OUT/region/truth.tif" ] || $LSMAP synth region "$OUT/region" --size 2048 --seed 1
$LSMAP map --model "$OUT/run" --rgb "$OUT/region/rgb.tif" --dem "$OUT/region/dem.tif" \
    --out "$OUT/map" --workers 2 --chunk 512 --cog --polygons
$LSMAP score --map "$OUT/map" --truth "$OUT/region/truth.tif"
echo "demo outputs in $OUT/: run/ (model bundle, metrics, loss curve), map/ (probability.zarr," \
     "probability.tif, polygons.geojson, quicklook.png)"
