#!/usr/bin/env bash
# Build, here, what a GPU machine without internet or the data mirror needs, in .carry/ (git-ignored),
# small enough to travel with the repository (the device tool carries 64 MiB in all):
#   kit.sh wheels            .carry/wheels: the packages the GPU image lacks (wheels.txt), ~24 MiB, for
#                            its Python 3.12 (PYVER=3.11 kit.sh wheels: for another Python)
#   kit.sh bench             .carry/bench: uc_merced images for train_throughput.py (a bundle), the vmap
#                            engine's fused.py for fusion_forms.py --against, and
#                            .carry/cifar10_5cls: the 2,000-image folder of recommend_budget.py
#   kit.sh chunk NAME ARGS   .carry/NAME: `backbone-bench bundle ARGS` (the images and weights of those runs,
#                            and the records they already have), then `slim`, then the upload's size
#   kit.sh slim              before a call: only what a call needs stays in the working tree (travels.txt,
#                            git sparse-checkout), so the upload does not grow with results/runs or the book;
#                            until `kit.sh full`, every command that reads this checkout's results refuses
#   kit.sh full              after the call: the whole tree back (git sparse-checkout disable)
#   kit.sh size CARRY...     the bytes one call would upload: the working tree's tracked files that are
#                            there, untracked files git does not ignore, and the carried paths
#   kit.sh travels CARRY...  those files, NUL-separated (the CPU rehearsal copies exactly these)
#   kit.sh compat            no GPU needed: the engine's tests on this CPU under the GPU image's torch and
#                            torchvision (TORCH, TORCHVISION; default the image's, from the device
#                            tool's KINDS.md), in a venv of their own (COMPAT_VENV, default /tmp/image-torch)
# Carry .carry/commit.txt too. On the GPU machine: `source benchmarks/device/setup.sh .carry/NAME` (see there).
set -euo pipefail
cd "$(dirname "$0")/../.."
BENCH=${BENCH:-.venv/bin/backbone-bench}
what=${1:?usage: kit.sh wheels | bench | chunk NAME BUNDLE-ARGS... | slim | full | size CARRY... | travels CARRY... | compat}; shift
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
travels() {  # what the device tool sends: tracked files present here, untracked not ignored, carried paths
  { git ls-files -z --cached --others --exclude-standard; if [ $# -gt 0 ]; then find "$@" -type f -print0; fi; } |
    sort -zu | while IFS= read -r -d '' f; do if [ -f "$f" ]; then printf '%s\0' "$f"; fi; done
}
size() { travels "$@" | xargs -0r stat -c %s | awk '{s += $1} END {print s + 0}'; }
case "$what" in
  travels) travels "$@"; exit ;;
  size) size "$@"; exit ;;
  full)
    git sparse-checkout disable
    rm -f .carry/SLIM
    echo "the whole tree is back ($(git ls-files | wc -l) tracked files)"; exit ;;
  slim)
    for claim in results/runs/.claims/*; do  # a run in flight here holds a claim naming its process
      pid=$(grep -o '"pid": *[0-9]*' "$claim" 2>/dev/null | grep -o '[0-9]*$') || continue
      if kill -0 "$pid" 2>/dev/null; then
        echo "kit.sh: a sweep (pid $pid) is writing into results/: stop it first; slim removes the records" \
             "it reads" >&2; exit 2
      fi
    done
    mkdir -p .carry
    grep -v '^#' benchmarks/device/travels.txt | git sparse-checkout set --no-cone --stdin
    echo "slimmed by benchmarks/device/kit.sh slim; \`bash benchmarks/device/kit.sh full\` brings the tree back" > .carry/SLIM
    echo "slim: $(git ls-files -t | grep -c '^H') of $(git ls-files | wc -l) tracked files here until" \
         "\`bash benchmarks/device/kit.sh full\`"; exit ;;
esac
mkdir -p .carry
# the code's commit, for the records made over there (the copy that travels has no .git)
git rev-parse --short=12 HEAD | tr -d '\n' > .carry/commit.txt
git diff --quiet HEAD -- lib || echo -n "+dirty" >> .carry/commit.txt
case "$what" in
  wheels)
    rm -rf .carry/wheels
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "${PYVER:-3.12}" --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 -d .carry/wheels -r benchmarks/device/wheels.txt
    ;;
  bench)
    rm -rf .carry/bench .carry/cifar10_5cls
    "$BENCH" bundle --preset offline --datasets uc_merced --backbones regnetx_002 --modes scratch --shots 10 \
      --seeds 0 --out .carry/bench
    rm -rf .carry/bench/weights   # the throughput benchmark trains scratch twins: no weights read
    git show 8e3ef24:lib/backbone_bench/fused.py > .carry/bench/vmap_fused.py  # the copy over there has no .git
    "$BENCH" data export cifar10 .carry/cifar10_5cls --per-class 400 --classes airplane,automobile,bird,cat,deer
    ;;
  chunk)
    name=${1:?usage: kit.sh chunk NAME BUNDLE-ARGS...}; shift
    rm -rf ".carry/$name"
    "$BENCH" bundle "$@" --out ".carry/$name"
    bash "$0" slim
    # one upload holds the working tree and every carried path: 64 MiB in all
    tree=$(size); carried=$(size ".carry/$name" .carry/commit.txt); carried=$((carried - tree))
    limit=$((64 * 1024 * 1024))
    total=$((tree + carried))
    if [ "$total" -gt "$limit" ]; then
      echo "kit.sh: chunk $name is $(mib "$carried") MiB; with the working tree ($(mib "$tree") MiB) that is" \
           "$(mib "$total") MiB, over the 64 MiB upload: fewer datasets or backbones (at most" \
           "$(mib $((limit - tree))) MiB fit)" >&2
      rm -rf ".carry/$name"; exit 2
    fi
    echo "chunk $name: $(mib "$carried") MiB + working tree $(mib "$tree") MiB = upload $(mib "$total") of 64 MiB" \
         "($(mib $((limit - total))) MiB left)"
    ;;
  compat)
    # An API the engine uses that moved between this project's torch and the image's fails here, in
    # minutes of this CPU, not in a lent machine's. ~3 GB of wheels (the image's torch is a CUDA build).
    venv=${COMPAT_VENV:-/tmp/image-torch}
    test -x "$venv/bin/python" || python3 -m venv "$venv"
    python3 -c 'import tomllib; d = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(r for r in d["dependencies"] + d["optional-dependencies"]["test"] if not r.startswith("torch")))' \
      > "$venv/requirements.txt"
    "$venv/bin/pip" install -q "torch==${TORCH:-2.11.0}" "torchvision==${TORCHVISION:-0.26.0}" -r "$venv/requirements.txt"
    "$venv/bin/pip" install -q --no-deps -e .
    "$venv/bin/python" -c 'import torch, torchvision, timm; print("torch", torch.__version__, "torchvision", torchvision.__version__, "timm", timm.__version__)'
    "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/test_fused.py tests/test_engine.py
    exit ;;
  *) echo "kit.sh: unknown part '$what' (wheels, bench, chunk or compat)" >&2; exit 2 ;;
esac
du -sh .carry/* | sort -h
