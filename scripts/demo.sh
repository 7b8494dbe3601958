#!/usr/bin/env bash
# The main job end to end on the embedded synthetic world, sized for a laptop CPU (a few minutes):
# a synthetic region (RGB COG + DEM COG in another CRS + landslide inventory) -> Ray Train
# (2 workers) on windows streamed by Ray Data -> its held-out blocks scored -> another synthetic
# region -> lsmap map (Ray Data) -> COG, polygons, quicklook, and the map's score against the truth.
# Safe to run twice: training and mapping resume from what the first run finished.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-demo-out}
LSMAP=.venv/bin/lsmap
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}

[ -f "$OUT/train-region/layers.yaml" ] || $LSMAP synth region "$OUT/train-region" --size 4096 --seed 0
$LSMAP train --region "$OUT/train-region/layers.yaml" --out "$OUT/run" --arch unetpp_ca \
    --loss bce+dice --epochs 10 --windows-per-epoch 512 --block-m 256 --workers 2 \
    --batch-size 8 --lr 1e-3 --size 64 --base-width 8 --depth 3 --dropout 0.1 \
    --bands rgbd,slope,relative_elevation
$LSMAP evaluate --model "$OUT/run" --region "$OUT/train-region/layers.yaml" --split test
[ -f "$OUT/region/truth.tif" ] || $LSMAP synth region "$OUT/region" --size 2048 --seed 1
$LSMAP map --model "$OUT/run" --rgb "$OUT/region/rgb.tif" --dem "$OUT/region/dem.tif" \
    --out "$OUT/map" --workers 2 --chunk 512 --cog --polygons
$LSMAP score --map "$OUT/map" --truth "$OUT/region/truth.tif"
echo "demo outputs in $OUT/: run/ (model bundle, metrics, loss curve), map/ (probability.zarr," \
     "probability.tif, polygons.geojson, quicklook.png)"
