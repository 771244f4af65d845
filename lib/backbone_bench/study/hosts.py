"""Which class of processor ran the CPU records made before device names carried it.

Until 2026-12-03 a CPU was named by its model string alone, and the hypervisor these sweeps run
under names Zen 3 and Zen 4 EPYCs both ``AMD EPYC``: the same run took up to twice as long on
one as on the other, under one name. The engine's speed path left evidence: since the commit
that chose it by measurement (SPEED_PATH_SINCE), mobilenetv2_100 and regnetx_002 train and
extract under bf16 autocast exactly where the CPU has native bf16, and in fp32 elsewhere
(speed.py reading train_throughput_cpu_variants.csv, where both measured fastest in bf16). A
sweep session runs on one machine, so those two backbones' runs name the class of every run of
their session. On an AMD EPYC, native bf16 means AVX-512 BF16 (Zen 4 on) and its absence means
AVX2 (no Zen before 4 has AVX-512). Elsewhere, or where a session holds no such run or its runs
disagree, a record keeps the name it was made with.

``relabel`` writes the class into such records (``store.compile_table`` runs it), keeping the
name as recorded and the evidence beside it.
"""
from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta

from backbone_bench.environment import tagged

SPEED_PATH_SINCE = "2026-12-01T22:41:51+00:00"  # 8bb2aed: the CPU speed path chosen by measurement
WITNESSES = ("mobilenetv2_100", "regnetx_002")
SESSION_GAP = timedelta(minutes=30)  # a sweep writes a record every few minutes; sessions are hours apart
_NAME = re.compile(r"^CPU (?P<model>.+?) x(?P<threads>\d+) threads$")


def _untagged(device: str) -> re.Match | None:
    m = _NAME.match(device or "")
    return m if m and not m["model"].endswith(")") else None


def described(device: str) -> str:
    """A device name as pages write it: a CPU whose class was never recorded says so."""
    return f"{device} (vector unit not recorded)" if _untagged(device) else device


def _time(record: dict) -> datetime | None:
    try:
        return datetime.fromisoformat(record["finished_at"])
    except (KeyError, TypeError, ValueError):
        return None


def _witness(record: dict) -> tuple[str, str] | None:
    """(the class this record shows its CPU to be, how it shows it), else None."""
    env = record.get("environment", {})
    m = _NAME.match(env.get("device", ""))
    if m and m["model"].endswith(")"):  # made since names carry the class: says so itself
        return m["model"].rsplit(" (", 1)[1][:-1], "named"
    if not m or "AMD" not in m["model"] or record["config"]["backbone"] not in WITNESSES:
        return None
    if record.get("finished_at", "") < SPEED_PATH_SINCE or record.get("status") != "ok":
        return None
    return {"bf16-autocast": ("AVX-512 BF16", "bf16"), "fp32": ("AVX2", "fp32")}.get(env.get("precision"))


_HOW = {"named": "were made since device names carry the class and name it",
        "bf16": f"of {' and '.join(WITNESSES)} computed in bf16 autocast, which the engine chooses only on native "
                "bf16 (on an AMD EPYC: AVX-512 BF16)",
        "fp32": f"of {' and '.join(WITNESSES)} computed in fp32, which the engine chooses only without native bf16 "
                "(on an AMD EPYC: no AVX-512, so AVX2)"}


def sessions(records: list) -> list[list[dict]]:
    """The CPU records in runs of finish times no more than SESSION_GAP apart."""
    timed = sorted((r for r in records if r.get("environment", {}).get("device_type") == "cpu" and _time(r)),
                   key=_time)
    out: list[list[dict]] = []
    for r in timed:
        if out and _time(r) - _time(out[-1][-1]) <= SESSION_GAP:
            out[-1].append(r)
        else:
            out.append([r])
    return out


def inferred(records: list) -> dict[str, tuple[str, str]]:
    """{key: (device with its class, the evidence)} for the untagged CPU records whose class their
    session shows."""
    out = {}
    for session in sessions(records):
        seen = [w for w in map(_witness, session) if w]
        if not seen or len({isa for isa, _ in seen}) > 1:
            continue
        span = f"{session[0]['finished_at'][:16]} to {session[-1]['finished_at'][11:16]} UTC"
        how = Counter(kind for _, kind in seen)
        why = f"inferred from its session ({span}): " + "; ".join(f"{n} runs {_HOW[k]}" for k, n in how.items())
        for r in session:
            m = _untagged(r["environment"].get("device", ""))
            if m and "AMD" in m["model"]:
                out[r["key"]] = (f"CPU {tagged(m['model'], seen[0][0])} x{m['threads']} threads", why)
    return out


def relabel(records: list) -> list[dict]:
    """The records whose CPU class was inferred, changed in place: ``device`` with its class,
    ``device_as_recorded`` and ``device_from`` beside it."""
    found = inferred(records)
    changed = []
    for r in records:
        if r.get("key") in found:
            env = r["environment"]
            env["device_as_recorded"] = env["device"]
            env["device"], env["device_from"] = found[r["key"]]
            changed.append(r)
    return changed
