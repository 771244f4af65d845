"""The results store: one record per run, written atomically, compiled into a tidy table.

results/runs/<key>.json   config, status, metrics, curves, timing, environment, weights
results/runs/<key>.npz    test indices, predictions (small ints), probabilities (float16)
results/runs.csv|parquet  one row per record, rebuilt from the records (never edited)

A record appears whole or not at all (temporary file + rename), and the JSON is written
last, so a run killed mid-write leaves at most an orphan .tmp that nothing reads.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from backbone_bench import paths


def config_key(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def runs_dir(results: Path | None = None) -> Path:
    return (Path(results) if results else paths.results_dir()) / "runs"


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_record(record: dict, arrays: dict | None = None, results: Path | None = None) -> Path:
    """Write ``record`` (and its arrays) under its key; an outdated record it replaces moves to
    ``superseded/`` beside runs/ first, so what changed (precision, engine) can still be compared."""
    folder = runs_dir(results)
    folder.mkdir(parents=True, exist_ok=True)
    key = record["key"]
    supersede(folder / f"{key}.json", record)
    if arrays:
        _atomic_write(folder / f"{key}.npz", lambda f: np.savez_compressed(f, **arrays))
    path = folder / f"{key}.json"
    _atomic_write(path, lambda f: f.write(json.dumps(record, indent=1, default=_jsonable).encode()))
    return path


def superseded_dir(results: Path | None = None) -> Path:
    return runs_dir(results).parent / "superseded"


def supersede(path: Path, new: dict) -> None:
    """Move the outdated record at ``path`` (JSON and arrays) to superseded/, unless ``new`` is the same
    record rewritten (a relabelled host). Records that are not outdated are simply replaced."""
    try:
        old = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return
    if old.get("finished_at") == new.get("finished_at") or old.get("status") != "ok" or not outdated(old):
        return
    target = superseded_dir(path.parent.parent)
    target.mkdir(parents=True, exist_ok=True)
    for part in (path.with_suffix(".npz"), path):  # the JSON last, like a write
        if part.exists():
            os.replace(part, target / part.name)


def read_superseded(results: Path | None = None) -> list[dict]:
    """The records a rerun replaced (their arrays beside them in superseded/)."""
    folder = superseded_dir(results)
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []


def claim(key: str, results: Path | None = None) -> bool:
    """Take the right to run ``key`` (several drivers may share one results folder).

    A claim is a file created exclusively; False when another live driver holds it or the run is
    already recorded. A claim left by a driver that died (its process is gone on this host, or it
    is older than a day elsewhere) is taken over, so a killed driver never blocks a restart."""
    import socket
    import time

    folder = runs_dir(results) / ".claims"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / key
    me = dict(host=socket.gethostname(), pid=os.getpid(), at=time.time())
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if not _stale(path, me):
                return False
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        if _recorded(key, results):  # finished by another driver meanwhile
            release(key, results)
            return False
        return True
    return False


def _stale(path: Path, me: dict) -> bool:
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError):
        return True  # half-written by a driver killed while claiming
    if owner.get("host") == me["host"]:
        try:
            os.kill(owner["pid"], 0)
            return False
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    return me["at"] - owner.get("at", 0) > 24 * 3600


def _recorded(key: str, results: Path | None) -> bool:
    path = runs_dir(results) / f"{key}.json"
    try:
        return not outdated(json.loads(path.read_text()))
    except (FileNotFoundError, json.JSONDecodeError):
        return False


def release(key: str, results: Path | None = None) -> None:
    (runs_dir(results) / ".claims" / key).unlink(missing_ok=True)


def _jsonable(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value)} in a record")


def read_records(results: Path | None = None, keys=None, deep: bool = False) -> list[dict]:
    """Every record, or those of ``keys`` that exist (only their files are read). A damaged record
    (JSON that does not parse, a key that is not its config's, predictions that do not open) is
    moved aside to runs/.quarantine/ with a warning naming it and why, and counts as not done, so
    the next sweep makes it again; the others are read as usual. ``deep`` reads every array too."""
    folder = runs_dir(results)
    if not folder.exists():
        return []
    files = sorted(folder.glob("*.json")) if keys is None else [folder / f"{k}.json" for k in keys]
    out = []
    for path in files:
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        record, problem = _check(path, text, deep)
        if problem:
            quarantine(path, problem)
        else:
            out.append(record)
    return out


def _check(path: Path, text: str, deep: bool) -> tuple[dict | None, str | None]:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        return None, f"its JSON does not parse ({err.msg} at line {err.lineno})"
    if not isinstance(record, dict) or not {"key", "config", "status"} <= set(record):
        return None, "it lacks key, config or status"
    if record["key"] != path.stem or config_key(record["config"]) != record["key"]:
        return None, f"its key {record['key']} is not its config's ({config_key(record['config'])}) or file name's"
    if record["status"] == "ok":
        arrays = path.with_suffix(".npz")
        try:
            with np.load(arrays) as f:
                if deep:
                    for name in f.files:
                        f[name]
                elif "test_pred" not in f.files:
                    raise ValueError("no test_pred")
        except FileNotFoundError:
            return None, f"its predictions {arrays.name} are missing"
        except Exception as err:  # BadZipFile, EOFError, ValueError, zlib.error: all mean damaged
            return None, f"its predictions {arrays.name} do not open ({type(err).__name__}: {err})"
    return record, None


def quarantine(path: Path, reason: str) -> Path:
    """Move a damaged record (its JSON and arrays) to runs/.quarantine/, saying so; nothing is deleted."""
    import warnings

    folder = path.parent / ".quarantine"
    folder.mkdir(exist_ok=True)
    for part in (path, path.with_suffix(".npz")):
        if part.exists():
            os.replace(part, folder / part.name)
    (folder / f"{path.stem}.reason.txt").write_text(reason + "\n")
    warnings.warn(f"{path}: damaged record moved to {folder}/: {reason}; it counts as not done, so the next "
                  "sweep makes it again", stacklevel=3)
    return folder


def quarantined(results: Path | None = None) -> list[Path]:
    folder = runs_dir(results) / ".quarantine"
    return sorted(folder.glob("*.reason.txt")) if folder.exists() else []


# The gradient engine's version, written into every fine-tune and scratch record. 2: the fused
# engine, which puts the network back in train mode after each validation pass; engine 1 left it in
# eval mode (BatchNorm frozen at its running statistics) for every step after the first pass.
ENGINE = 2


def gradient(config: dict) -> bool:
    """Fine-tune and scratch runs: the ones the gradient engine trains (not linear probes)."""
    return config.get("mode") in ("finetune", "scratch")


def outdated(record: dict) -> bool:
    """A record to be made again: a fine-tune or scratch run of an engine older than ENGINE, a run
    that computed in another precision than its recipe's (before precision was the recipe's, the
    speed path chose bf16 for some backbones), or a run made by code in no commit."""
    return bool(outdated_why(record))


def outdated_why(record: dict) -> str:
    """Why ``record`` is outdated, in words ('' when it is not)."""
    from backbone_bench.engine.recipe import recipe_precision

    if gradient(record["config"]) and record.get("engine", 1) < ENGINE:
        return f"engine {record.get('engine', 1)} < {ENGINE}"
    env = record.get("environment", {})
    ran, wanted = env.get("precision"), recipe_precision(record["config"])
    if ran is not None and ran != wanted:
        return f"computed in {ran}, its recipe's precision is {wanted}"
    if str(env.get("git_commit", "")).endswith("+dirty"):  # a diff nobody kept (today's names it: execute.py)
        return f"made by uncommitted code that was not kept ({env['git_commit']})"
    return ""


#: Failures that are the run's answer (it diverged, did not fit, had no weights): rerunning the same
#: config gives the same. An ``error`` (anything else: a bug, a killed worker, a full disk) is not.
FINAL_FAILURES = ("diverged", "oom", "unavailable")


def done_keys(results: Path | None = None, include_failed: bool = True, records=None) -> set[str]:
    """Keys of runs that need no rerun: ``ok`` ones, and (``include_failed``) final failures; an
    ``error`` record is retried by the next sweep. ``records``: those already read, to read none again."""
    final = ("ok",) + (FINAL_FAILURES if include_failed else ())
    records = read_records(results) if records is None else records
    return {r["key"] for r in records if r["status"] in final and not outdated(r)}


def read_arrays(key: str, results: Path | None = None) -> dict:
    path = runs_dir(results) / f"{key}.npz"
    try:
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError) as err:
        from backbone_bench.errors import BenchError

        raise BenchError(f"run {key}: its predictions {path} do not open ({type(err).__name__}: {err}); "
                         "run `backbone-bench results --check` to move it aside, then rerun its sweep") from err


def last_eval_step(record: dict) -> int | None:
    """The chosen learning rate's last validation pass: a chosen step equal to it means validation was
    still improving when the step budget ran out (the run had not converged)."""
    lr = record.get("chosen", {}).get("lr")
    steps = [c["step"] for c in record.get("curves", []) if c.get("lr") == lr and "step" in c]
    return max(steps) if steps else None


def flatten(record: dict) -> dict:
    """One tidy row: the context (config, environment, weights) in columns beside the metrics."""
    row = {"key": record["key"], "status": record["status"], "reason": record.get("reason", ""),
           "preset": record.get("preset", "")}
    config = dict(record["config"])
    recipe = config.pop("recipe")
    row |= config
    row |= {f"recipe_{k}": json.dumps(v) if isinstance(v, list) else v for k, v in recipe.items()}
    for split in ("test", "val"):
        row |= {f"{split}_{k}": v for k, v in record.get("metrics", {}).get(split, {}).items()}
    row |= {f"chosen_{k}": v for k, v in record.get("chosen", {}).items() if k != "candidates"}
    row |= record.get("timing", {})
    row |= record.get("environment", {})
    row |= record.get("weights", {})
    row |= {k: record[k] for k in ("n_train", "n_val", "n_test", "effective_shots", "micro_batch", "subset_shared",
                                   "collapsed", "splits_digest", "data_key") if k in record}
    if gradient(record["config"]):
        row["engine"] = record.get("engine", 1)
        row["group_members"] = record.get("fused", {}).get("group_members", 1)
        row["channels_last_stack"] = record.get("fused", {}).get("channels_last", False)
        # before fusions were named, every group of more than one ran as a vmapped stack
        row["fusion"] = record.get("fused", {}).get("fusion", "vmap" if row["group_members"] > 1 else "solo")
        row["last_eval_step"] = last_eval_step(record)
    row["finished_at"] = record.get("finished_at")
    row["outdated"] = outdated_why(record)  # kept in the table, never reported as its config's run
    return row


def read_table(results: Path | None = None) -> pd.DataFrame:
    """The records as one table, one row per run, writing nothing (a folder may be read-only)."""
    results = Path(results) if results else paths.results_dir()
    return _table(read_records(results), results)


def _table(records: list, results: Path) -> pd.DataFrame:
    table = pd.DataFrame([flatten(r) for r in records])
    if len(table):
        table = _fill_older_records(table, results)
        table = table.sort_values(["dataset", "shots", "backbone", "mode", "seed", "key"]).reset_index(drop=True)
    return table


def compile_table(results: Path | None = None) -> pd.DataFrame:
    """Rebuild results/runs.csv and runs.parquet from the records; returns the table. CPU records made
    before device names carried the processor's class get it first where their session shows it
    (study/hosts.py), once: the record keeps the name it was made with beside it."""
    from backbone_bench.study.hosts import relabel

    results = Path(results) if results else paths.results_dir()
    records = read_records(results)  # read once: relabelled in place, then tabulated
    for record in relabel(records):
        write_record(record, results=results)
    table = _table(records, results)
    if len(table):
        table.to_csv(results / "runs.csv", index=False)
        table.to_parquet(results / "runs.parquet", index=False)
    return table


def _fill_older_records(table: pd.DataFrame, results: Path) -> pd.DataFrame:
    """Columns that records made before they existed lack, derived from what those records hold."""
    from backbone_bench.engine.metrics import collapsed

    for column in ("collapsed", "subset_shared"):
        if column not in table:
            table[column] = pd.NA
    ok = table["status"] == "ok"
    for i in table.index[ok & table["collapsed"].isna()]:
        table.at[i, "collapsed"] = collapsed(read_arrays(table.at[i, "key"], results)["test_pred"])
    missing = ok & table["subset_shared"].isna()  # every class's whole pool was used: seeds share it
    if missing.any():
        table.loc[missing, "subset_shared"] = table.loc[missing, "effective_shots"] < table.loc[missing, "shots"]
    table[["collapsed", "subset_shared"]] = table[["collapsed", "subset_shared"]].astype("boolean")
    return table
