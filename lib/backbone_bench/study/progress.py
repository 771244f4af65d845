"""How far an edition's sweep has come: runs per cell, hours measured against the projection, and
how many fine-tune runs chose their last checkpoint (a budget too short to converge would).

    python -m backbone_bench.study.progress cpu
"""
from __future__ import annotations

import sys

import pandas as pd

from backbone_bench.study import store


def progress(preset: str, results=None) -> dict:
    """{runs: table per (dataset, mode, shots), hours: {CPU: (hours, projected hours, timed runs)} of
    the ok runs on each CPU that ran some, last_checkpoint_share}."""
    from backbone_bench.study.budget import recorded_against_projection

    records = [r for r in store.read_records(results) if r.get("preset") == preset]
    ok = [r for r in records if r["status"] == "ok"]
    table = (pd.DataFrame([dict(dataset=r["config"]["dataset"], mode=r["config"]["mode"], shots=r["config"]["shots"])
                           for r in ok]).value_counts().rename("runs").reset_index()
             .sort_values(["mode", "shots", "dataset"]) if ok else pd.DataFrame())
    cpus = sorted({r["environment"]["device"] for r in ok if r["environment"].get("device_type") == "cpu"})
    fine = [r for r in ok if r["config"]["mode"] == "finetune" and r.get("curves")]
    last = [r["chosen"]["step"] == store.last_eval_step(r) for r in fine]
    return dict(runs=table, records=len(records), ok=len(ok),
                hours={cpu: recorded_against_projection(records, cpu) for cpu in cpus},
                finetune_runs=len(fine), last_checkpoint_share=sum(last) / len(last) if last else None)


def main(argv=None) -> int:
    preset = (argv or sys.argv[1:] or ["cpu"])[0]
    p = progress(preset)
    if len(p["runs"]):
        print(p["runs"].to_string(index=False))
    share = p["last_checkpoint_share"]
    print(f"{preset}: {p['ok']} ok of {p['records']} records"
          + "".join(f"; {n} runs on {cpu} took {took:.2f} h" + (f" against {then:.2f} h projected for them" if then else "")
                    for cpu, (took, then, n) in p["hours"].items())
          + (f"; fine-tune runs whose chosen checkpoint is their last evaluation: {share:.0%} of {p['finetune_runs']}"
             if share is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
