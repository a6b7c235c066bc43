#!/usr/bin/env bash
# The GPU-scale campaign (`--scale gpu`, one seed) on one large GPU: the teacher alone, then the twelve student rows
# in four parallel streams. At crop 161 one run leaves an H100 mostly idle, so four at a time finish sooner. Each
# stream runs a ResNet-18 row of Table 1, then a MobileNet-V2 row, then one of GAT, Heo and the two positions, so
# if time runs out it is the Table 2-3 rows that are missing. Resumable like every campaign: run it again and it
# skips the finished runs. Exits non-zero if any stream failed (each stream's log is in RESULTS/stream<i>.log).
#
#   tools/gpu_campaign.sh DATA_ROOT RESULTS [SEED]       (PAPERKD="python3 -m paperkd" without an installed script)
set -euo pipefail
data=${1:?usage: tools/gpu_campaign.sh DATA_ROOT RESULTS [SEED]}
results=${2:?usage: tools/gpu_campaign.sh DATA_ROOT RESULTS [SEED]}
seed=${3:-0}
read -r -a paperkd <<< "${PAPERKD:-paperkd}"
common=(campaign --scale gpu --dataset standin --data-root "$data" --results "$results" --device cuda --seeds "$seed")
mkdir -p "$results"
"${paperkd[@]}" "${common[@]}" --rows teacher > "$results/teacher.log" 2>&1
streams=("r18-none mnv2-none r18-gat" "r18-pixel mnv2-pixel r18-heo" "r18-pair mnv2-pair r18-pixel-middle"
         "r18-both mnv2-both r18-pair-end")
pids=()
for i in "${!streams[@]}"; do
    # shellcheck disable=SC2086  # the rows are meant to split into words
    "${paperkd[@]}" "${common[@]}" --rows ${streams[$i]} > "$results/stream$i.log" 2>&1 &
    pids+=("$!")
done
status=0
for pid in "${pids[@]}"; do
    wait "$pid" || status=1
done
exit "$status"
