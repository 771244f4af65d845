"""The About box on every page: what made the page (preset, resolution, devices, code), the
edition's coverage and weights flags in words, and the command that reruns it with the parameters
it was made with."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from backbone_bench.data.registry import DATASETS
from backbone_bench.report.labels import MODE_NAMES, listed
from backbone_bench.report.load import coverage, missing_runs, not_run_text, results_path, stand_ins, stand_ins_text
from backbone_bench.study.presets import get_preset


def flags_in_words(ok: pd.DataFrame) -> str:
    """The weights flags of the backbones on the page, said in words."""
    if ok.empty:
        return ""
    flagged = ok[ok["mode"] != "scratch"].groupby("backbone")[["weights_bn_folded", "weights_int8_derived"]].max()
    int8 = [b for b, r in flagged.iterrows() if r.weights_int8_derived]
    folded = [b for b, r in flagged.iterrows() if r.weights_bn_folded]
    parts = []
    if int8:
        parts.append(f"{listed(int8)} start from weights dequantized from int8 models (real trained weights that "
                     "lost some accuracy to quantization)")
    if folded:
        parts.append(f"{listed(folded)} have BatchNorm folded into the convolutions, re-estimated on training "
                     "images before fine-tuning so that training starts from the pretrained function")
    return ("; ".join(parts) + ". See {doc}`/book/provenance`.") if parts else "No weights flags: every backbone's weights are the original float checkpoints."


def coverage_grid(table: pd.DataFrame) -> str:
    """Mode x shots, each cell the seeds, backbones and datasets present, as a Markdown table."""
    cov = coverage(table)
    if cov.empty:
        return "No runs recorded yet."
    shots = sorted(cov["shots"].unique())
    lines = ["| mode | " + " | ".join(f"{k} shots" for k in shots) + " |", "|---" * (len(shots) + 1) + "|"]
    for mode, rows in cov.groupby("mode"):
        by = rows.set_index("shots")
        cells = [f"{len(by.at[k, 'seeds'].split(','))} seed(s) x {by.at[k, 'backbones']} backbones x "
                 f"{by.at[k, 'datasets']} datasets, on {by.at[k, 'devices']}" if k in by.index else "not run" for k in shots]
        lines.append(f"| {MODE_NAMES.get(mode, mode)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def published_edition(results=None) -> str:
    """The preset this repository publishes (a template's default when it is given none)."""
    from backbone_bench.study.published import edition

    return edition(results_path(results))


def commits_text(ok: pd.DataFrame) -> str:
    """The code behind an edition's records in a few words: one commit, or how many and the range from
    the first record's to the last's (``git log A^..B`` lists them), not every hash."""
    if not len(ok) or "git_commit" not in ok:
        return "-"
    order = ok.sort_values("finished_at") if "finished_at" in ok else ok
    commits = list(dict.fromkeys(order["git_commit"].astype(str)))
    if len(commits) == 1:
        return f"`{commits[0]}`"
    return (f"{len(commits)} commits, the first record's `{commits[0]}` to the last's `{commits[-1]}` "
            f"(each record names its own)")


def rerun_command(preset: str, template: str, params: dict) -> str:
    """The page rerun and rendered (report/page.py): papermill's parameters, a page to open."""
    args = "".join(f" -y '{k}: [{', '.join(map(str, v))}]'" if isinstance(v, (list, tuple)) else f" -p {k} {v}"
                   for k, v in params.items())
    return f"backbone-bench page {template} /tmp/{template} -p preset {preset}{args}"


#: Parameters a rerun line never repeats: where a page writes its tables, and how a run is started.
NOT_REPEATED = ("preset", "results", "downloads", "device")


def page_params(template: str, scope: dict) -> dict:
    """The parameters this page was made with that differ from its template's defaults (``scope``:
    the page's globals), so that its rerun line makes the same page."""
    import ast

    import nbformat

    from backbone_bench.report.page import NOTEBOOKS

    nb = nbformat.read(NOTEBOOKS / f"{template}.ipynb", as_version=4)
    cell = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    out = {}
    for node in ast.parse(cell).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            default = ast.literal_eval(node.value)
            if name not in NOT_REPEATED and name in scope and scope[name] != default:
                out[name] = scope[name]
    return out


def about(preset: str, table: pd.DataFrame, template: str = "summary", results=None, scope: dict | None = None,
          **params) -> None:
    """The block on every page: what made it (preset, resolution, device, code), the edition's
    coverage, the weights flags in words, and the command that reruns the page (with the results
    folder it read, where that is not the repository's own, and, given the page's globals as
    ``scope``, every parameter it was made with that is not its template's default)."""
    from backbone_bench import paths

    if scope is not None:
        params = page_params(template, scope) | params
    p = get_preset(preset)
    if results is not None and Path(results).resolve() != paths.results_dir().resolve():
        params = dict(params, results=Path(results).resolve())
    ok = table[table["status"] == "ok"] if len(table) else table
    from backbone_bench.study.hosts import described

    devices = listed([described(d) for d in sorted(ok["device"].unique())]) if len(ok) else "none yet"
    resolutions = ", ".join(f"{r} px" for r in sorted(ok["resolution"].unique())) if len(ok) else f"{p.resolution} px"
    commits = commits_text(ok)
    from backbone_bench.report.page import declared

    train = (" To train what is missing first, add `-p run_missing True`: the runs land in the results folder the page "
             "reads (`-p results DIR` keeps them apart from the tracked ones, and a new DIR starts empty, so the page "
             "then trains its whole grid)." if "run_missing" in declared(template) else "")
    datasets = [d for d in p.datasets if DATASETS[d].domain == params["domain"]] if "domain" in params else None
    missing = missing_runs(preset, table, datasets)
    not_yet = (f"**Not run yet**: {not_run_text(missing)} (`backbone-bench run --preset {preset}` makes them).\n\n"
               if len(missing) else "")
    standing = stand_ins_text(table)
    if standing:
        not_yet += f"**Reruns pending**: {standing}\n\n"
    text = (f"Preset `{preset}` at {resolutions}; {len(ok)} runs on {devices}; code {commits}.\n\n{not_yet}"
            f"{coverage_grid(table)}\n\n{flags_in_words(ok)}\n\n"
            f"**Rerun this page** as HTML, with the parameters it was made with: "
            f"`{rerun_command(preset, template, params)}`.{train} "
            f"The whole book: `backbone-bench study --preset {preset}`.")
    if preset == "quick":
        display(Markdown(f":::{{warning}}\n**Quick preset: a pipeline check, not a result.** {p.note}\n:::"))
    n_standing = len(stand_ins(table))
    # in plain sight, briefly (the answer must still open the first screen): a partial edition never passes
    # for a complete one, nor a cell whose runs are being remade for one already remade (the detail: About)
    stand_in = f" ({n_standing} of them stand in for reruns with clean selection)" if n_standing else ""
    if len(missing):
        display(Markdown(f":::{{warning}}\n**Partial edition: {len(table)} of {len(table) + len(missing)} runs of the "
                         f"`{preset}` grid{' for this domain' if datasets else ''} are recorded**{stand_in}. Every number "
                         f"uses only those; *About this edition* lists what is missing and the command that makes it."
                         f"\n:::"))
    elif n_standing:
        display(Markdown(f":::{{warning}}\n**Reruns pending**: {n_standing} runs selected on all of validation, as "
                         f"first published, stand in for their reruns with clean selection; *About this edition* says "
                         f"which.\n:::"))
    display(Markdown(f":::{{admonition}} About this edition\n:class: dropdown note\n{text}\n:::"))
