#!/usr/bin/env bash
# Pilot of the next CPU regime (issue: a campaign whose comparisons mean something), under the `authors` recipe.
# Candidate A: the whole 1,464-image train split of the stand-in rendered at short side 80, the first 300 val images,
# crop 65, batch 8; students 10 epochs, teacher 30. One run at a time, at nice 10, resumable (rerun the script).
#
#   tools/pilot_cpu.sh <stand-in root> [results folder]
#
# The stand-in: paperkd make-standin <root> --labels-from ../shared/data/voc2012-labels --size 80
set -euo pipefail
data=${1:?usage: tools/pilot_cpu.sh <stand-in root> [results folder]}
out=${2:-results/pilot-cpu/a}
common=(--scale cpu --recipe authors --dataset standin --data-root "$data" --out "$out"
        --max-train-images 100000 --max-val-images 300 --quiet --resume)
run() { [ -f "$out/$1-s$2/record.json" ] || nice -n 10 paperkd train --preset "$1" --seed "$2" "${@:3}" "${common[@]}"; }
run r18-none 0 --epochs 10
run mnv2-none 0 --epochs 10
run teacher 0 --epochs 30
run r18-none 1 --epochs 10
run mnv2-none 1 --epochs 10
