#!/usr/bin/env bash
# Real data in, real numbers out (see README.md beside this file).
#
#   experiments/real_data/run.sh [extra Hydra overrides for the trainings]
#   WITH_MIX=1 experiments/real_data/run.sh     # also the real + synthetic recipe
#
# 1. transformer, real tweets only (geoloc-train experiment=real_umass): 3 fold models
#    whose out-of-fold predictions calibrate the policy, then the deployed refit
# 2. (WITH_MIX=1) the same with synthetic rows in train (experiment=real_umass_mix)
# 3. majority + char n-gram LR baselines on the same split, then one table with the runs
#    above and the previous recipe's committed rows (python -m geoloc.baselines ...)
# Everything is evaluated on the real validation split. Runs go to $REAL_DATA_OUT
# (default outputs/real_data, git-ignored); the small records (summaries, per-country
# tables, run times) are copied to experiments/real_data/results/ and the table to
# experiments/baselines/results.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${BIN:-.venv/bin}"
OUT="${REAL_DATA_OUT:-outputs/real_data}"
RESULTS=experiments/real_data/results
PREVIOUS="$RESULTS/calib_split_recipe"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export WANDB_MODE="${WANDB_MODE:-offline}" PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$RESULTS"

train() {  # name, experiment, extra overrides...
  local name=$1 experiment=$2 start
  shift 2
  start=$(date +%s)
  echo "== $name: geoloc-train experiment=$experiment $* (log: $OUT/$name.log)"
  "$BIN/geoloc-train" "experiment=$experiment" "$@" "hydra.run.dir=$OUT/$name" >"$OUT/$name.log" 2>&1 \
    || { tail -n 40 "$OUT/$name.log"; exit 1; }
  sed -n '/^## geoloc-train/,$p' "$OUT/$name.log"
  mkdir -p "$RESULTS/$name"
  cp "$OUT/$name/report/summary.json" "$OUT/$name/report/per_class.csv" \
     "$OUT/$name/report/report.md" "$RESULTS/$name/"
  cp "$OUT/$name"/checkpoints/*.thresholds.json "$RESULTS/$name/thresholds.json"
  echo "$name: $(( $(date +%s) - start )) s wall (geoloc-train experiment=$experiment $*)" \
    | tee -a "$RESULTS/times.txt"
}

: >"$RESULTS/times.txt"
rows=()
train real_only real_umass "$@"
rows+=(--transformer "transformer, cross-fit (real only)=$OUT/real_only/report")
if [ "${WITH_MIX:-0}" = 1 ]; then
  train real_mix real_umass_mix "$@"
  rows+=(--transformer "transformer, cross-fit (real + synthetic)=$OUT/real_mix/report")
fi

"$BIN/python" -m geoloc.baselines experiment=real_umass "${rows[@]}" \
  --transformer "transformer, calib split (previous recipe, real only)=$PREVIOUS/real_only" \
  --transformer "transformer, calib split (previous recipe, real + synthetic)=$PREVIOUS/real_mix" \
  --out experiments/baselines --reports "$OUT/baselines" \
  --title "Real tweets: baselines vs transformer (UMass Global English, validation split)"
