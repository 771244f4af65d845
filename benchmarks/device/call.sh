#!/usr/bin/env bash
# ONE command for a whole GPU call (the device tool's 10 minutes), in the repository root there:
#   bash benchmarks/device/call.sh .carry/CHUNK --preset offline --shots 10 --modes finetune,scratch \
#        --datasets D1,D2 --backbones B1,B2
# 1. setup.sh over the carried chunk (kit.sh chunk CHUNK ...: its images and weights);
# 2. every 30 s, and at the end however the call ends, the records made so far are packed into
#    $OUT/records.tgz (atomically: a killed call returns the last whole pack);
# 3. smoke.py (at most SMOKE_S seconds): the CUDA path end to end per backbone, both layouts; it
#    writes the layout choice the sweep reads and the backbones cleared to fuse;
# 4. per backbone: `backbone-bench run` with the rest of the arguments, fused where the smoke cleared
#    it and solo (--group-size 1) elsewhere, with a --deadline that ends it inside LIMIT seconds.
#    A fused group that fails is trained again solo by the engine itself.
# Here: `backbone-bench results merge records.tgz`, then `backbone-bench results` and commit.
# Environment: LIMIT (seconds of the whole call, default 540), SMOKE_S (default 90), DEVICE (cuda),
# FUSED_MEMBERS (trainings per fused group, default 12),
# SMOKE_ARGS (extra smoke.py options), SIMULATE=1 (the CPU rehearsal: tests/test_device_call.py).
set -uo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)
chunk=${1:?usage: call.sh .carry/CHUNK RUN-ARGS... --backbones B1,B2}; shift
LIMIT=${LIMIT:-540}; SMOKE_S=${SMOKE_S:-90}; DEVICE=${DEVICE:-cuda}
export OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
source benchmarks/device/setup.sh "$chunk" || { echo "call.sh: setup failed" >&2; exit 3; }
backbones=""; args=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--backbones" ]; then backbones=$2; shift 2; else args+=("$1"); shift; fi
done
[ -n "$backbones" ] || { echo "call.sh: name the chunk's --backbones" >&2; exit 2; }
( while sleep 30; do bb_collect > /dev/null; done ) & packer=$!
trap 'kill $packer 2>/dev/null; bb_collect' EXIT
elapsed() { echo $(( $(date +%s) - start )); }
echo "call: setup done at $(elapsed) s; smoke (at most ${SMOKE_S} s)"
timeout "$SMOKE_S" python3 benchmarks/device/smoke.py --backbones "$backbones" --device "$DEVICE" \
  --budget $((SMOKE_S - 20)) --out "$OUT" ${SMOKE_ARGS:-} || echo "call: smoke cut off or failed: every backbone solo"
touch "$OUT/cleared.txt"
for b in ${backbones//,/ }; do
  left=$(( LIMIT - $(elapsed) - 20 ))  # 20 s for the last pack and the transfer
  if [ "$left" -lt 30 ]; then echo "call: $(elapsed) s used, no time for $b"; break; fi
  if grep -qx "$b" "$OUT/cleared.txt"; then group=(--group-size "${FUSED_MEMBERS:-12}"); how=fused
  else group=(--group-size 1); how=solo; fi
  echo "call: $b ($how), at most $left s"
  timeout "$left" python3 -m backbone_bench run "${args[@]}" --backbones "$b" --device "$DEVICE" \
    --deadline $(( left - 10 )) "${group[@]}" || echo "call: $b ended with status $?"
done
echo "call: done at $(elapsed) s"
