#!/usr/bin/env bash
# Real data in, real numbers out (see README.md beside this file).
#
#   experiments/real_data/run.sh [extra Hydra overrides for the trainings]
#   WITH_MIX=1 experiments/real_data/run.sh     # also the real + synthetic recipe
#
# 1. transformer fused with a char n-gram model, real tweets only (geoloc-train
#    experiment=real_umass): 3 fold models (and n-gram models on the same folds) whose
#    out-of-fold predictions choose the fusion weight and calibrate the policy, then the
#    deployed refit; then how confident it is on OTHER tweets, by script
# 2. (WITH_MIX=1) the same with synthetic rows in train (experiment=real_umass_mix)
# 3. majority + char n-gram LR baselines on the same split, then one table with the runs
#    above and the previous recipes' committed rows (geoloc-baselines ...)
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
ALONE="$RESULTS/crossfit_transformer_only"
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
  # every run metric: the fusion's choice, the fold curves, the fold ensemble (ensemble/*)
  cp "$OUT/$name/metrics.json" "$RESULTS/$name/metrics.json"
  # the deployed policy and fusion, from the run's model folder (geoloc/bundle/)
  cp "$OUT/$name/model/geoloc_thresholds.json" "$RESULTS/$name/thresholds.json"
  # the fusion's choice (C, weight and every candidate's out-of-fold log-loss), without
  # the n-gram vocabulary and weights (megabytes; they stay in the model folder)
  rm -f "$RESULTS/$name/fusion.json"
  f="$OUT/$name/model/geoloc_fusion.json"  # none with fusion=null
  if [ -e "$f" ]; then
    "$BIN/python" -c 'import json,sys; d=json.load(open(sys.argv[1])); d["ngram"]={k: v for k, v in d["ngram"].items() if k!="vocabulary"}; print(json.dumps(d, indent=1))' \
      "$f" >"$RESULTS/$name/fusion.json"
  fi
  echo "$name: $(( $(date +%s) - start )) s wall (geoloc-train experiment=$experiment $*)" \
    | tee -a "$RESULTS/times.txt"
}

: >"$RESULTS/times.txt"
rows=()
train real_only real_umass "$@"
rows+=(--transformer "transformer + char n-grams, cross-fit (real only)=$OUT/real_only/report")
"$BIN/python" experiments/real_data/other_confidence.py "$OUT/real_only" \
  | tee "$RESULTS/other_confidence.md"
if [ "${WITH_MIX:-0}" = 1 ]; then
  train real_mix real_umass_mix "$@"
  rows+=(--transformer "transformer + char n-grams, cross-fit (real + synthetic)=$OUT/real_mix/report")
fi

"$BIN/geoloc-baselines" experiment=real_umass "${rows[@]}" \
  --transformer "transformer alone, cross-fit (previous recipe, real only)=$ALONE" \
  --transformer "transformer, calib split (previous recipe, real only)=$PREVIOUS/real_only" \
  --transformer "transformer, calib split (previous recipe, real + synthetic)=$PREVIOUS/real_mix" \
  --out experiments/baselines --reports "$OUT/baselines" \
  --title "Real tweets: baselines vs transformer (UMass Global English, validation split)"
