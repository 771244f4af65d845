"""The sweep's hours: why the `cpu` edition runs at its resolution (the budget), what each edition's
sweep took against its projection, and, before an edition's first run, what it is projected to take."""
from __future__ import annotations

import pandas as pd

from backbone_bench.report.load import results_path

#: The design's sweep budget for the `cpu` edition, and how far it may grow before the resolution drops.
BUDGET_HOURS, ALLOWED_HOURS = 15.0, 20.0


def resolution_budget_text(results, budget_hours: float = BUDGET_HOURS) -> str:
    """Why the `cpu` edition runs at its resolution: its gradient runs' hours at the measured CPU
    training throughput (benchmarks/cpu_path.py), and the same grid at the next resolutions, scaled by
    pixel count (training cost grows with it)."""
    from backbone_bench.study.budget import MEASURE_COMMAND
    from backbone_bench.study.presets import get_preset

    path = results_path(results) / "benchmarks" / "train_throughput_cpu_path.csv"
    if not path.exists():
        return "Not measured in this results folder."
    t = pd.read_csv(path)
    hours = {d: float(rows.loc[rows["backbone"] == "all", "cpu_grid_hours_b"].iloc[0]) if (rows["backbone"] == "all").any()
             else float(rows["cpu_grid_hours_b"].sum()) for d, rows in t.groupby("device", sort=False)}
    first = next(iter(hours))  # the file keeps the order processors were measured in: the choice was made on the first
    px = int(t["resolution"].iloc[0])
    chosen = get_preset("cpu").resolution
    larger = {r: hours[first] * (r / px) ** 2 for r in (px + 16, px + 32)}
    fits = [r for r, h in larger.items() if h <= budget_hours]
    others = "".join(f"; on {d} the same runs take {h:.1f} h" for d, h in hours.items() if d != first)
    return (f"At {px} px the `cpu` edition's fine-tune and scratch runs take {hours[first]:.1f} h on {first} at "
            f"their full step budgets (measured training throughput of each backbone on the chosen speed path, "
            f"`{MEASURE_COMMAND}`); training cost grows with the pixel count, so there "
            + " and ".join(f"{r} px would take about {h:.1f} h" for r, h in larger.items())
            + f" before evaluation and the linear probes. {chosen} px is the highest resolution, in steps of 16 px, "
            f"that keeps the grid within about {budget_hours:.0f} hours on the processor it was chosen on"
            + ("" if not fits else f" (by this scaling {max(fits)} px would fit too: the margin went to evaluation)")
            + f"{others}." + _cut_text("cpu", first))


def _cut_text(preset: str, device: str) -> str:
    """What the preset's cuts leave out of its design, and what they save on ``device``."""
    from collections import Counter

    from backbone_bench.report.labels import MODE_NAMES, listed
    from backbone_bench.study.budget import projected_hours
    from backbone_bench.study.plan import cut_configs

    cut = cut_configs(preset)
    if not cut:
        return " The budget cut nothing from the design."
    cells = Counter((c["mode"], c["shots"]) for c in cut)
    what = listed([f"{MODE_NAMES.get(m, m)} at {k} images per class" for m, k in sorted(cells)])
    hours = projected_hours(cut, device)[0]
    saved = f", about {hours:.1f} h on {device} at full step budgets" if hours is not None else ""
    return (f" To fit, the budget cut what the design names first: {what} ({len(cut)} runs{saved}), the least "
            "informative comparison; every shot level and seed of fine-tuning and of the linear probes is run.")


def _projected_by_level(preset: str, results, records: list) -> str:
    """Before an edition's first run: its grid's projected hours per shot level on each processor
    with a committed throughput measurement (study/budget.py), scaled by how far the `cpu` edition's
    runs (of ``records``, the store as read) strayed from theirs mode by mode (the same recipe at
    another resolution)."""
    from backbone_bench.study.budget import calibrated_hours, measured_devices
    from backbone_bench.study.plan import build_plan

    grid = build_plan(preset, results=results, skip_done=False).configs
    published = [r for r in records if r.get("preset") == "cpu"]
    parts = []
    for device in measured_devices():
        levels = {k: calibrated_hours([c for c in grid if c["shots"] == k], published, device)[0]
                  for k in sorted({c["shots"] for c in grid})}
        if all(h is not None for h in levels.values()):
            parts.append(f"{sum(levels.values()):.0f} h on {device} ("
                         + ", ".join(f"{k} shots {h:.0f} h" for k, h in levels.items()) + ")")
    return (f" Its {len(grid)} runs are projected at " + " or ".join(parts) + ", at the pace the `cpu` edition's runs "
            "kept against their projection, mode by mode." if parts else "")


def sweep_hours_text(results, preset: str = "cpu", budget_hours: float = BUDGET_HOURS) -> str:
    """The edition's sweep hours as measured, against the projection made before it ran
    (study/budget.py), per processor it ran on (a sweep's sessions land on whichever machine they
    get, and two classes of one name differ up to 2x): so far and, at each one's recorded pace mode
    by mode, what is left; once the grid is complete, its real total."""
    from collections import Counter

    from backbone_bench.study import store
    from backbone_bench.study.budget import calibrated_hours, projected_hours, recorded_against_projection
    from backbone_bench.study.plan import build_plan

    results = results_path(results)
    everything = store.read_records(results)
    records = [r for r in everything if r.get("preset") == preset]
    devices = Counter(r["environment"]["device"] for r in records if r.get("environment", {}).get("device_type") == "cpu")
    if not devices:
        return f"No run of the `{preset}` edition has been recorded on a CPU yet." + _projected_by_level(preset, results, everything)
    measured = {d: recorded_against_projection(records, d) for d, _ in devices.most_common()}
    took = sum(t for t, _, _ in measured.values())
    per = "; ".join(f"{n} run{'s' if n != 1 else ''} on {d} took {t:.1f} h" + (f" against {p:.1f} h projected for them ({t / p:.2f}x)" if p else
                                                     " (no projection measured for it)")
                    for d, (t, p, n) in measured.items())
    grid = build_plan(preset, results=results, skip_done=False).configs  # one plan, one read of the records
    done = store.done_keys(records=everything)  # as the planner counts: a run recorded by any preset is done
    missing = [c for c in grid if store.config_key(c) not in done]
    if not missing:
        projected = sum(p for _, p, _ in measured.values())
        first = next(iter(measured))  # the processor most of the grid ran on, as the budget was planned
        whole = projected_hours(grid, first)[0]
        return (f"The `{preset}` edition's whole grid is recorded: {sum(n for _, _, n in measured.values())} runs took "
                f"{took:.1f} h of sweep ({per})"
                + (f", against {projected:.1f} h projected for the same runs on the processors that ran them "
                   f"({took / projected:.2f}x)" if projected else "")
                + (f"; the whole grid had been projected at {whole:.1f} h on {first}" if whole is not None else "")
                + f". {_gave_way(took, budget_hours, 'It')}")
    wholes = " and ".join(f"{h:.1f} h on {d}" for d in measured if (h := projected_hours(grid, d)[0]) is not None)
    lefts = {d: h for d in measured if (h := calibrated_hours(missing, records, d)[0]) is not None}
    slowest = max(lefts.values()) if lefts else 0.0
    unmeasured = max((projected_hours(missing, d)[1] for d in measured), default=0)
    left = (("need about " + " or ".join(f"{h:.1f} h at the pace recorded on {d}" for d, h in lefts.items())
             + ", mode by mode") if lefts else "have no measured pace on these processors yet")
    if lefts and unmeasured:
        left += f" ({unmeasured} of them of backbones not measured on it, not counted)"
    return (f"So far the `{preset}` edition's runs took {took:.1f} h of sweep: {per}. Its whole grid was projected at "
            f"{wholes or 'no measured rate'}; its {len(missing)} runs still to do {left}. "
            + _gave_way(took + slowest, budget_hours, "At the slower pace the whole grid"))


def _gave_way(hours: float, budget: float, subject: str) -> str:
    """Which of budget, resolution and convergence gave way: the budget may grow to ALLOWED_HOURS
    before the resolution drops (the design's rule), and never the step budgets that convergence needs."""
    if hours <= budget:
        return f"{subject} stays within the {budget:.0f}-hour budget."
    if hours > ALLOWED_HOURS:
        return (f"{subject} takes about {hours:.1f} h, past the {ALLOWED_HOURS:.0f} hours the design allows before the resolution "
                f"drops: a lower resolution would be the design's answer, and these pages say so rather than hide it.")
    return (f"{subject} takes about {hours:.1f} h, {hours - budget:.1f} h over the {budget:.0f}-hour budget: the "
            f"budget is what gives way (up to {ALLOWED_HOURS:.0f} hours are allowed before the resolution drops), not the "
            f"resolution or the step budgets convergence needs.")
