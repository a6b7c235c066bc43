#!/usr/bin/env bash
# The CPU campaign of the `cpu` scale (issue: a campaign whose comparisons mean something), in the order that makes
# a partial campaign most useful: the teacher, the runs of Figure 2 (plain and proposed ResNet-18, seed 0), the two
# controls of seed 0 (logit KD: can this teacher teach at all? the plain student given the proposed one's compute),
# the plain students' three seeds (their spread and convergence decide whether anything below can be read), every
# row under the `authors` recipe, seed by seed, seeds 3 and 4 of the headline pair (plain and proposed ResNet-18),
# then the key rows under `paper` distilling from the same teacher. Resumable: rerun it; finished runs are skipped,
# an interrupted one resumes, and a teacher whose checkpoint went with its machine (checkpoints are not committed)
# is trained again before the students that still need it (stopping at its first epoch that is not its record's:
# this machine cannot give the bytes the finished students distilled from; then run the rows that need no teacher).
#
#   tools/campaign_cpu.sh <stand-in root>              # run it (resumes; finished runs are skipped)
#   tools/campaign_cpu.sh <stand-in root> --dry-run    # where it stands, run by run; trains nothing
#
# PAPERKD names the command (default: paperkd), e.g. a launcher that runs a frozen checkout while this one changes.
# The stand-in: paperkd make-standin <root> --labels-from ../shared/data/voc2012-labels --size 80
set -euo pipefail
data=${1:?usage: tools/campaign_cpu.sh <stand-in root> [--dry-run]}
authors=results/cpu-standin-voclabels-80
paper=results/cpu-standin-voclabels-80-paper
common=(--scale cpu --dataset standin --data-root "$data" --quiet "${@:2}")
read -r -a paperkd <<< "${PAPERKD:-paperkd}"
campaign() { nice -n 10 "${paperkd[@]}" campaign "${common[@]}" "$@"; }
rows=(r18-none r18-both r18-pixel r18-pair r18-gat r18-heo r18-pixel-middle r18-pair-end r18-kd
      mnv2-none mnv2-both mnv2-pixel mnv2-pair r18-none-compute)
campaign --recipe authors --results "$authors" --seeds 0 --rows teacher r18-none r18-both
campaign --recipe authors --results "$authors" --seeds 0 --rows r18-kd r18-none-compute
campaign --recipe authors --results "$authors" --seeds 0 1 2 --rows r18-none mnv2-none
campaign --recipe authors --results "$authors" --seeds 0 1 2 --rows "${rows[@]}"
# the headline claim (proposed > none) twice more: the paired test cannot decide anything with fewer than 5 seeds
campaign --recipe authors --results "$authors" --seeds 3 4 --rows r18-none r18-both
campaign --recipe paper --results "$paper" --teacher "$authors/teacher-s0/best.pt" \
         --seeds 0 1 2 --rows r18-none r18-both r18-gat r18-heo
