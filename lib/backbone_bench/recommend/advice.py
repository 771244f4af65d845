"""What `recommend` concludes from its records, and the report that says it.

``summarize(out)`` reads OUT's records (only the runs OUT/settings.json names) and computes, with
the study's two-level bootstrap: each candidate's test balanced accuracy with its interval, the
recommended (backbone, mode), chosen on validation, whether its test interval separates it from
the runner-up, and what pretraining buys (fine-tune minus the scratch twin). ``write_report``
executes notebooks/recommend.ipynb on OUT and renders it to one self-contained HTML page; the
notebook calls the display functions below, and so does the book's example page.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from backbone_bench import paths
from backbone_bench.study import store
from backbone_bench.analysis import uncertainty
from backbone_bench.engine.metrics import PRIMARY
from backbone_bench.report.labels import SHORT_MODES

MODE_WORDS = {"finetune": "fine-tuned", "linear_probe": "linear probe", "scratch": "trained from scratch"}
TEMPLATE = paths.REPO_ROOT / "notebooks" / "recommend.ipynb"


@dataclass
class Summary:
    settings: dict
    dataset: dict                 # OUT/dataset.json
    runs: pd.DataFrame            # this command's records (all outcomes)
    candidates: pd.DataFrame      # per (backbone, mode): val, test [lo, hi], runs, cost columns
    recommended: dict | None      # the winning candidate's row
    runner_up: dict | None
    difference: dict | None       # recommended minus runner-up on test: diff, lo, hi, separated
    pretraining: dict | None      # fine-tune minus scratch twin of the best fine-tuned backbone
    inventory: pd.DataFrame
    results: Path
    chance: float = float("nan")  # balanced accuracy of guessing: 1 / classes

    def as_json(self) -> dict:
        return dict(recommended=self.recommended, runner_up=self.runner_up, difference=self.difference,
                    pretraining=self.pretraining, chance_balanced_accuracy=self.chance, answer=answer_text(self, False), settings=self.settings, command=command(self.settings),
                    inventory=self.inventory.to_dict("records"),
                    failed_runs=int((self.runs["status"] != "ok").sum()) if len(self.runs) else 0)


def command(settings: dict) -> str:
    from backbone_bench.recommend.settings import Settings

    return Settings(**settings).command()


def summarize(out, n_boot: int = 1000) -> Summary:
    out = Path(out)
    settings = json.loads((out / "settings.json").read_text())
    results = out / "results"
    keys = [k for phase in settings["keys"].values() for k in phase]
    table = store.compile_table(results)
    runs = table[table["key"].isin(keys)].reset_index(drop=True) if len(table) else table
    ok = runs[runs["status"] == "ok"].reset_index(drop=True) if len(runs) else runs
    inventory = pd.read_csv(out / "inventory.csv", keep_default_na=False)
    dataset = json.loads((out / "dataset.json").read_text())
    chance = 1 / len(dataset["classes"])
    if ok.empty:
        return Summary(settings, dataset, runs, pd.DataFrame(), None, None, None, None, inventory, results, chance)
    cells = uncertainty.cell_draws(ok, uncertainty.stored_predictions(results), n_boot)
    ci = cells.interval()
    per = ok.assign(collapsed=ok["collapsed"].fillna(False).astype(bool)).groupby(["backbone", "mode"])
    val = pd.concat([per[f"val_{PRIMARY}"].mean().rename("val"), per["collapsed"].sum(), per["n_val"].min()], axis=1)
    cand = ci.merge(val.reset_index(), on=["backbone", "mode"]).rename(columns={"mean": "test", "lo": "test_lo",
                                                                                  "hi": "test_hi"})
    cand = _with_cost(cand, ok)
    order = cand[cand["mode"] != "scratch"].sort_values("val", ascending=False, kind="stable").index.tolist()
    recommended = runner_up = difference = pretraining = None
    if order:
        recommended = _row(cand, order[0])
    if len(order) > 1:
        runner_up = _row(cand, order[1])
        reps = cells.draws[order[0]] - cells.draws[order[1]]
        lo, hi = uncertainty.quantiles(reps)
        difference = dict(diff=recommended["test"] - runner_up["test"], lo=float(lo), hi=float(hi),
                          separated=uncertainty.decided(lo, hi) != 0)
    tuned = cand[cand["mode"] == "finetune"].sort_values("val", ascending=False, kind="stable")
    if len(tuned):
        backbone = tuned.iloc[0]["backbone"]
        scratch = cand[(cand["mode"] == "scratch") & (cand["backbone"] == backbone)]
        if len(scratch):
            i, j = tuned.index[0], scratch.index[0]
            lo, hi = uncertainty.quantiles(cells.draws[i] - cells.draws[j])
            pretraining = dict(backbone=backbone, finetune=float(cand.at[i, "test"]), scratch=float(cand.at[j, "test"]),
                               gain=float(cand.at[i, "test"] - cand.at[j, "test"]), lo=float(lo), hi=float(hi))
    cand["recommended"] = [i == order[0] if order else False for i in cand.index]
    return Summary(settings, dataset, runs, cand, recommended, runner_up, difference, pretraining, inventory, results,
                   chance)


def _row(frame: pd.DataFrame, i) -> dict:
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in frame.loc[i].to_dict().items()}


def _with_cost(cand: pd.DataFrame, ok: pd.DataFrame) -> pd.DataFrame:
    """Parameters and throughput per architecture from the study's cost table (results/cost.csv),
    measured on the device these runs used when it is there, else on the device it has most of."""
    from backbone_bench.report.costs import cost_table

    cost = cost_table(paths.REPO_ROOT / "results")
    if cost is None or cost.empty:
        return cand
    device = ok["device"].mode().iat[0]
    rows = cost[cost["device"] == device] if (cost["device"] == device).any() else \
        cost[cost["device"] == cost["device"].value_counts().index[0]]
    nearest = rows["resolution"].iloc[(rows["resolution"] - ok["resolution"].iat[0]).abs().argmin()]
    rows = rows[rows["resolution"] == nearest]  # timed at the input size closest to these runs
    keep = rows[["backbone", "params_m", "infer_images_per_s", "latency_ms_median", "device", "resolution"]]
    keep = keep.rename(columns={"device": "cost_device", "resolution": "cost_resolution"})
    arch = cand["backbone"].str.partition(".")[0]
    return cand.assign(architecture=arch).merge(keep, left_on="architecture", right_on="backbone", how="left",
                                                suffixes=("", "_cost")).drop(columns=["backbone_cost", "architecture"])


SUMMARY_COLUMNS = ["backbone", "mode", "val", "test", "test_lo", "test_hi", "n_runs", "n_subsets", "collapsed",
                   "recommended",
                   "params_m", "infer_images_per_s", "latency_ms_median", "cost_device", "cost_resolution"]


def write_summary(out, n_boot: int = 1000) -> dict:
    """OUT/summary.csv (a row per candidate) and OUT/summary.json (the answer and how it was made)."""
    s = summarize(out, n_boot)
    if len(s.candidates):
        s.candidates[[c for c in SUMMARY_COLUMNS if c in s.candidates]].to_csv(Path(out) / "summary.csv", index=False,
                                                                               float_format="%.4f")
    data = s.as_json()
    (Path(out) / "summary.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    print(answer_text(s, markdown=False))
    return data


# ---- the report ------------------------------------------------------------------------
def _name(row: dict) -> str:
    return f"{row['backbone']} ({MODE_WORDS[row['mode']]})"


def answer_text(s: Summary, markdown: bool = True) -> str:
    """The answer in sentences, each decided by the book's rule (uncertainty.decided): a difference
    is stated only when its interval excludes zero; chance and collapsed runs are named."""
    b = (lambda t: f"**{t}**") if markdown else (lambda t: t)
    if s.recommended is None:
        return "No run finished successfully; see the failed runs below."
    r, chance = s.recommended, s.chance
    text = (f"Recommended: {b(_name(r))}, chosen on validation. Its test balanced accuracy: "
            f"{uncertainty.fmt(r['test'], r['test_lo'], r['test_hi'])} (95 % interval over "
            f"{uncertainty.interval_words(int(r['n_subsets']))}; chance is {chance:.3f}).{_chance_text(r, chance)}")
    if s.difference:
        text += " " + _versus_text(s)
    if s.pretraining:
        text += " " + _pretraining_text(s)
    return text


def _chance_text(row: dict, chance: float) -> str:
    if row.get("collapsed", 0):
        return (f" It collapsed to one class in {int(row['collapsed'])} of {int(row['n_runs'])} run(s): "
                "it predicts (nearly) one class for every image.")
    if row["test_lo"] <= chance:
        return " Its interval contains chance: on this test set it is not shown to beat guessing."
    return ""


def _versus_text(s: Summary) -> str:
    r, u, d = s.recommended, s.runner_up, s.difference
    diff = uncertainty.fmt(d["diff"], d["lo"], d["hi"], signed=True)
    same = r["backbone"] == u["backbone"]
    other = f"the same network {MODE_WORDS[u['mode']]}" if same else _name(u)
    verdict = uncertainty.decided(d["lo"], d["hi"])
    if r["val"] == u["val"]:
        other += ", tied with it on validation (the order between the two is arbitrary)"
    if verdict > 0:
        return f"It scores above the runner-up, {other}, on test: difference {diff}, an interval above zero."
    if verdict < 0:
        return (f"Validation and test disagree: the runner-up, {other}, scores higher on test (difference {diff}, an "
                f"interval below zero) although validation ({int(r['n_val'])} images) ranked it second. Next step: "
                "label more validation images, or add seeds (`--seeds`), and rerun this command (finished runs are "
                "kept); or take the runner-up, knowing that its test score then helped choose it and is optimistic.")
    if same:
        return (f"The runner-up is {other}: the difference on test, {diff}, contains zero, so the choice is one of "
                "mode, not of backbone. The linear probe trains only a classifier on frozen features (far cheaper "
                "to train); at inference both cost the same.")
    text = (f"The runner-up, {other}, is not separated from it: the difference on test, {diff}, contains zero, "
            "so on this evidence either will do")
    speed = {row["backbone"]: row.get("infer_images_per_s") for row in (r, u)}
    if all(isinstance(v, float) and v == v for v in speed.values()):
        fast, slow = max(speed, key=speed.get), min(speed.values())
        where = f"images/s on {r['cost_device']} at {int(r['cost_resolution'])} px"
        # a shared CPU's timings of one network differ by up to 2x (cost page): name only a clear gap
        text += (f"; {fast} is the faster at inference ({speed[fast]:.0f} against {slow:.0f} {where})"
                 if speed[fast] >= FASTER * slow else
                 f"; they run at about the same speed ({speed[fast]:.0f} and {slow:.0f} {where})")
    return text + "."


FASTER = 1.25  # the throughput ratio from which one candidate is called the faster


def _pretraining_text(s: Summary) -> str:
    p = s.pretraining
    diff = uncertainty.fmt(p["gain"], p["lo"], p["hi"], signed=True)
    scratch = s.candidates[(s.candidates["backbone"] == p["backbone"]) & (s.candidates["mode"] == "scratch")].iloc[0]
    twin = f"{p['backbone']}'s scratch twin (the same network from random weights, the same recipe)"
    if scratch.get("collapsed", 0):  # no gain is claimed against a network the recipe did not train
        return (f"Fine-tuned {p['backbone']} scores {diff} above {twin}, but the twin collapsed to one class in "
                f"{int(scratch['collapsed'])} of {int(scratch['n_runs'])} run(s) (test {scratch['test']:.3f}; chance "
                f"{s.chance:.3f}): the recipe did not train it, so this measures no gain from pretraining.")
    note = f" {twin[0].upper() + twin[1:]}'s interval contains chance ({s.chance:.3f})." \
        if scratch["test_lo"] <= s.chance else ""
    verdict = uncertainty.decided(p["lo"], p["hi"])
    if verdict > 0:
        return f"Pretraining buys {diff} over {twin}.{note}"
    if verdict < 0:
        return (f"Trained from scratch, {p['backbone']} scores higher than fine-tuned from ImageNet: fine-tune minus "
                f"scratch {diff}, an interval below zero.{note}")
    return (f"Whether pretraining helps here these runs cannot tell: fine-tune minus scratch ({p['backbone']}) is "
            f"{diff}, an interval that contains zero.{note}")


def candidates_display(s: Summary):
    """Narrow enough for a book page: the recommended candidate is starred; runs per candidate are
    said in the caption (every candidate has the same seeds unless a run failed)."""
    c = s.candidates.sort_values(["mode", "val"], ascending=[True, False])
    shown = pd.DataFrame({
        "backbone": [f"{b} *" if r else b for b, r in zip(c["backbone"], c["recommended"])],
        "mode": c["mode"].map(SHORT_MODES), "val.": c["val"].map("{:.3f}".format),
        "test [95% CI]": [uncertainty.fmt(v, lo, hi) + (" (contains chance)" if lo <= s.chance else "")
                          for v, lo, hi in zip(c["test"], c["test_lo"], c["test_hi"])]})
    if "params_m" in c:
        shown["params M"] = c["params_m"].map("{:.2f}".format)
        shown["img/s"] = c["infer_images_per_s"].map("{:.0f}".format)
    runs = ", ".join(str(n) for n in sorted(c["n_runs"].unique()))
    flagged = [f"{b} ({SHORT_MODES[m]})" for b, m, k in zip(c["backbone"], c["mode"], c["collapsed"]) if k]
    # numbers kept whole and apart (without padding a styler's columns touch: "0.834 0.857 [0.820, 0.889]2.24");
    # the backbone column is the one that wraps (display.breakable)
    cells = [{"selector": "td, th", "props": "padding: 0.1em 0.45em"},
             {"selector": "td:not(:first-child)", "props": "white-space: nowrap"}]
    return shown.style.hide(axis="index").set_table_styles(cells).set_caption(
        f"* recommended (best validation score). Runs per candidate: {runs}; intervals over "
        f"{uncertainty.interval_words(int(c['n_subsets'].min()))}. Chance (guessing) is {s.chance:.3f}. "
        + (f"Collapsed to one class: {', '.join(flagged)}. " if flagged else "")
        + "val.: mean validation balanced accuracy; img/s: inference throughput from the cost table "
        f"({_cost_where(c)}).")


def _cost_where(c: pd.DataFrame) -> str:
    if "cost_device" not in c or c["cost_device"].isna().all():
        return "not measured"
    return f"{c['cost_device'].dropna().iat[0]}, {int(c['cost_resolution'].dropna().iat[0])} px"


def cost_figure(s: Summary):
    from backbone_bench.report import plots

    if "params_m" not in s.candidates or s.candidates["params_m"].isna().all():
        return None
    best = s.candidates[s.candidates["mode"] != "scratch"].sort_values("val", ascending=False)
    points = best.drop_duplicates("backbone").dropna(subset=["params_m"])
    points = points.assign(label=[f"{b} ({'FT' if m == 'finetune' else 'LP'})" for b, m in
                                  zip(points["backbone"], points["mode"])])
    return plots.pareto(points, "infer_images_per_s", "test", label="label",
                        xlabel=f"inference images/s, timed on {points['cost_device'].iat[0]} at "
                               f"{int(points['cost_resolution'].iat[0])} px (these runs: {s.settings['resolution']} px)",
                        ylabel="test balanced accuracy")


def confusion_figure(s: Summary):
    from backbone_bench.report import plots

    if s.recommended is None:
        return None
    r = s.recommended
    keys = s.runs[(s.runs["backbone"] == r["backbone"]) & (s.runs["mode"] == r["mode"]) & (s.runs["status"] == "ok")]
    arrays = store.read_arrays(keys.sort_values("seed")["key"].iat[0], s.results)
    return plots.confusion(arrays["test_label"], arrays["test_pred"], s.dataset["classes"],
                           f"{_name(r)}, seed 0: test, normalised by true class")


def settings_text(s: Summary) -> str:
    st = s.settings
    ok = s.runs[s.runs["status"] == "ok"]
    devices = ", ".join(sorted(ok["device"].unique())) if len(ok) else "none"
    commits = ", ".join(sorted(ok["git_commit"].unique())) if len(ok) else "-"
    shots = int(ok["shots"].iat[0]) if len(ok) else 0
    steps = ", ".join(f"{m}: {int(v)}" for m, v in ok.groupby("mode")["recipe_steps"].first().items()) if len(ok) else ""
    ran = ok.groupby("mode")["backbone"].nunique() if len(ok) else pd.Series(dtype=int)
    phases = [f"{n} backbone(s) screened with a linear probe" if m == "linear_probe" else
              f"{n} fine-tuned" if m == "finetune" else f"{n} scratch twin(s)" for m, n in ran.items()]
    return (f"Input: {s.dataset['kind']} `{st['path']}` ({len(s.dataset['classes'])} classes). "
            f"{st['resolution']} px; {st['seeds']} seed(s); {', '.join(phases) or 'nothing ran'}; horizontal flips "
            f"{'on' if st['flip'] else 'off'}; every training image used (up to {shots} per class); optimizer steps "
            f"per learning rate {steps}; recipe and learning-rate grid of the study's `offline` preset. "
            f"{len(ok)} runs on {devices}; code {commits}. Choices read validation only; test is read for this "
            f"report.\n\n**Rerun or continue it:** `{command(st)}`")


def failures_text(s: Summary) -> str:
    bad = s.runs[s.runs["status"] != "ok"] if len(s.runs) else s.runs
    if bad.empty:
        return "Every run finished."
    return "Runs that did not finish: " + "; ".join(f"{r.backbone} {r.mode} seed {r.seed}: {r.status} ({r.reason})"
                                                    for r in bad.itertuples())


def write_report(out, n_boot: int = 1000) -> Path:
    """Execute the template on OUT and render OUT/report.html, one file that opens offline."""
    import nbformat
    import papermill as pm
    from nbconvert import HTMLExporter

    from backbone_bench.report.kernels import IPC_KERNEL

    out = Path(out).resolve()
    executed = out / "report.ipynb"
    pm.execute_notebook(str(TEMPLATE), str(executed), parameters=dict(out=str(out), n_boot=n_boot),
                        kernel_name="python3", cwd=str(out), progress_bar=False, log_output=False,
                        kernel_manager_class=IPC_KERNEL)
    exporter = HTMLExporter(template_name="lab", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    html, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
    # no script from a CDN: the page has no JavaScript to run, and must open without a network
    html = re.sub(r'<script[^>]*src="https?://[^"]*"[^>]*>\s*</script>', "", html)
    path = out / "report.html"
    path.write_text(html)
    print(f"report: {path}")
    return path
