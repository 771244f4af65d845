"""Import run records made elsewhere (a GPU box, a cluster) into the local results store.

Every record is checked before it is written: its key must be the hash of its config, its arrays
must match its counts, and the data it was made on (prepared-data key, split digest, test
indices) must be the data this checkout would use for the same config. A record that fails any
check is refused with the reason; one already present is skipped, and nothing local is overwritten
but an ``error`` record (a run that failed for no reason of its own, to be run again), which a
record of the same run from elsewhere replaces. Imported failures are counted apart from
completions: an imported ``error`` record is still to do.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from backbone_bench.study import store


@dataclass
class MergeReport:
    imported: list = field(default_factory=list)     # completions (status ok)
    failures: list = field(default_factory=list)     # (file, status): recorded failures imported
    skipped: list = field(default_factory=list)      # already present locally
    refused: list = field(default_factory=list)      # (file, reason)

    def summary(self) -> str:
        retry = sum(status == "error" for _, status in self.failures)
        lines = [f"{len(self.imported)} imported, {len(self.failures)} failures imported"
                 + (f" ({retry} errors, which the next sweep runs again)" if retry else "")
                 + f", {len(self.skipped)} already present, {len(self.refused)} refused"]
        lines += [f"  refused {name}: {reason}" for name, reason in self.refused]
        return "\n".join(lines)


@lru_cache(maxsize=None)
def _local_splits(dataset: str):
    from backbone_bench.data.prepare import prepare
    from backbone_bench.data.splits import load_splits

    prepared = prepare(dataset, progress=False)
    return prepared.key, load_splits(prepared)


def check(record: dict, arrays: dict | None) -> str | None:
    """The reason to refuse this record, or None when it is sound and made on our data."""
    config = record.get("config")
    if not isinstance(config, dict) or store.config_key(config) != record.get("key"):
        return "its key is not the hash of its config (edited or corrupted record)"
    if record.get("status") != "ok":
        return None  # a recorded failure carries no arrays and no metrics to verify
    if arrays is None:
        return "status ok but its .npz with the test predictions is missing"
    n_test = record.get("n_test")
    sizes = {k: len(v) for k, v in arrays.items()}
    if any(size != n_test for size in sizes.values()):
        return f"its arrays do not match n_test={n_test}: {sizes}"
    prob = np.asarray(arrays["test_prob"], dtype=np.float32)  # stored float16: ties after rounding are fine
    chosen = np.take_along_axis(prob, np.asarray(arrays["test_pred"], dtype=np.int64)[:, None], 1)[:, 0]
    if (chosen < prob.max(1)).any():
        return "its predictions are not the argmax of its probabilities"
    data_key, splits = _local_splits(config["dataset"])
    if record.get("data_key") not in (None, data_key):
        return (f"made on other prepared data ({record['data_key']}, here {data_key}): the dataset's source or "
                "de-duplication differs; rerun it here")
    if record.get("splits_digest") not in (None, splits.digest()):
        return "made on other splits (split digest differs): rerun it on this checkout's splits"
    if not set(np.asarray(arrays["test_index"]).tolist()) <= set(splits.test.tolist()):
        return "its test indices are not in this checkout's test split"
    return None


def merge(other: Path, results: Path | None = None) -> MergeReport:
    """Import every record of ``other`` (a results folder, its runs/ folder, or an archive of
    either: .tar.gz, .zip) that passes ``check``."""
    other = Path(other)
    if other.is_file():  # records brought back from another machine as one file
        import shutil
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            try:
                shutil.unpack_archive(other, tmp, filter="data")
            except (shutil.ReadError, ValueError) as err:
                from backbone_bench.errors import InvalidParameterError

                raise InvalidParameterError(f"{other} is neither a results folder nor an archive of one "
                                            f"(.tar.gz, .zip): {err}") from None
            return merge(Path(tmp), results)
    runs = other / "runs" if (other / "runs").is_dir() else other
    if not runs.is_dir():
        from backbone_bench.errors import InvalidParameterError

        raise InvalidParameterError(f"{other} is not a results folder (no runs/ inside): give the folder a sweep wrote")
    local = {r["key"]: r["status"] for r in store.read_records(results)}
    report = MergeReport()
    for path in sorted(runs.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            report.refused.append((path.name, f"not a readable record: {err}"))
            continue
        here = local.get(record.get("key"))
        if here is not None and (here != "error" or record.get("status") == "error"):
            report.skipped.append(path.name)  # present here (an error here gives way to a record from there)
            continue
        npz = path.with_suffix(".npz")
        arrays = None
        if npz.exists():
            with np.load(npz) as f:
                arrays = {k: f[k] for k in f.files}
        reason = check(record, arrays)
        if reason:
            report.refused.append((path.name, reason))
            continue
        store.write_record(record, arrays, results)
        if record.get("status") == "ok":
            report.imported.append(path.name)
        else:
            report.failures.append((path.name, record.get("status")))
    if report.imported or report.failures:
        store.compile_table(results)
    return report
