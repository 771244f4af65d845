# Source on the GPU machine, in the repository root, naming the carried folders that hold data:
#   source benchmarks/device/setup.sh .carry/bench [.carry/chunk10a ...]
# Installs this package over the image's torch/timm (--no-deps), the carried wheels into /tmp/site,
# and points the package at the carried bundles and a fresh cache. The bundles' records (those of
# their cells, `kit.sh chunk`) go into results/runs, and runs write there (so they are skipped); `bb_collect` packs the records made since
# into $OUT/records.tgz, to import here with `backbone-bench results merge records.tgz`.
if [ -n "${SIMULATE:-}" ]; then
  # the CPU rehearsal (tests/test_device_call.py): this copy's lib/ on the path, nothing installed,
  # and the packages the GPU image lacks hidden, so a call that needs one fails here first
  export PYTHONPATH="$PWD/benchmarks/device/hidden:$PWD/lib${PYTHONPATH:+:$PYTHONPATH}"
else
  python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >/dev/null || return 1
fi
if [ -d .carry/wheels ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .carry/wheels/*.whl >/dev/null || return 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
data=""; weights=""
mkdir -p results/runs
for d in "$@"; do
  data="$data${data:+:}$PWD/$d"
  [ -d "$d/weights" ] && weights="$weights${weights:+:}$PWD/$d/weights"
  # the records the chunk's cells already have (only these travel): the sweep skips them; times kept,
  # so bb_collect (files newer than the stamp below) returns only what is made here
  [ -d "$d/runs" ] && cp -p "$d"/runs/* results/runs/
done
[ -f .carry/commit.txt ] && export BACKBONE_BENCH_COMMIT="$(cat .carry/commit.txt)"
export BACKBONE_BENCH_DATA="$data" BACKBONE_BENCH_WEIGHTS="$weights" BACKBONE_BENCH_CACHE=/tmp/bb-cache
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
export PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
touch /tmp/bb-stamp
bb_collect() {  # atomic: a command killed while packing leaves the previous records.tgz whole
  find results/runs -maxdepth 1 -type f -newer /tmp/bb-stamp \( -name '*.json' -o -name '*.npz' \) \
    -printf 'runs/%P\n' > /tmp/bb-new.$$
  tar czf "${OUT:-/tmp}/.records.tgz.tmp" -C results -T /tmp/bb-new.$$ && \
    mv -f "${OUT:-/tmp}/.records.tgz.tmp" "${OUT:-/tmp}/records.tgz"
  echo "$(grep -c json /tmp/bb-new.$$) records in ${OUT:-/tmp}/records.tgz"
}
