#!/usr/bin/env bash
# The GPU measurements of 2026-11-28 in one script (run on the lent device machine; see README
# "Measured on a GPU"). Everything writes under $RES; each job has its own time limit so the
# results of the others survive. QUICK=1 runs the same jobs at 32 px on the CPU (a dry run).
#   RES=/tmp/gpu bash benchmarks/gpu_session.sh            # on a machine with CUDA
#   QUICK=1 RES=/tmp/gpu bash benchmarks/gpu_session.sh    # dry run here
set -u
RES=${RES:-runs/gpu}; mkdir -p "$RES"
LIMIT=${LIMIT:-500}
export MEDCLOAK_DEVICE=${MEDCLOAK_DEVICE:-auto} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
if [ "${QUICK:-0}" = 1 ]; then
  GRID="--quick --levels 16 --models small --no-embedding"; VAE="--n 96 --size 32 --set epochs=1"
  ATT="--size 32 --n 64 --steps 10 --t0-steps 10 --n-attacker 48 --vae-epochs 1 --t0-copies 1"; LIMIT=${LIMIT_QUICK:-300}
else
  GRID=""; VAE="--set epochs=40"; ATT="--t0-copies 2"
fi
nvidia-smi -L 2>/dev/null | tee "$RES/gpu.txt"
# 1. the utility grid (issue 5)
timeout "$LIMIT" $py benchmarks/utility_grid.py $GRID --threads 4 --out-dir "$RES/grid" > "$RES/grid.log" 2>&1 &
# 2. the attack table at 128 px (issue 4's deferred full size)
timeout "$LIMIT" $py benchmarks/attack_table.py $ATT --threads 4 --out "$RES/attack" > "$RES/attack.log" 2>&1 &
# 3. VAE fidelity trials toward vessel Dice 0.80 (issue 3), one after another
( for extra in "--set downsamples=1 --set vessel_weight=20 --set ssim_weight=0.03" \
               "--set downsamples=1 --set vessel_weight=20 --set ssim_weight=0.1" \
               "--set downsamples=1 --set vessel_weight=20 --set ssim_weight=0.03 --set base_channels=32"; do
    name=$(echo "$extra" | tr -d ' -' | tr '=' '_' | cut -c1-60)
    timeout "$LIMIT" $py benchmarks/vae_fidelity.py --threads 2 $VAE $extra --out "$RES/vae_$name.json" \
      >> "$RES/vae.log" 2>&1
  done ) &
wait
echo "all jobs ended"
