"""Subcommands for the study itself (run, results, backbones, ...); registered by cli/main.py's build_parser."""
from __future__ import annotations

import argparse
from pathlib import Path

# the preset names, without importing torch (presets.py does): --help answers at once
PRESET_NAMES = ("quick", "cpu", "cpu224", "offline_cpu", "offline", "full")


def csv_list(kind, what: str = "value"):
    """An argparse type: comma-separated values of ``kind``, with an error that says what is wrong."""
    def parse(text: str):
        try:
            return [kind(x.strip()) for x in text.split(",") if x.strip()]
        except ValueError:
            bad = next(x for x in text.split(",") if x.strip() and not _ok(kind, x.strip()))
            raise argparse.ArgumentTypeError(
                f"{bad!r} is not {'a whole number' if kind is int else 'valid'}: give {what} as comma-separated "
                f"{'numbers, e.g. 10,100' if kind is int else 'names'}") from None

    parse.__name__ = what  # argparse names the type in its messages
    return parse


def _ok(kind, text) -> bool:
    try:
        kind(text)
        return True
    except ValueError:
        return False


_csv = csv_list


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of at least 1")
    return value


def add_grid_options(p) -> None:
    """The grid a preset defines, each narrowable from the command line."""
    p.add_argument("--preset", default="quick", help=f"one of: {', '.join(PRESET_NAMES)} (see presets.py)")
    p.add_argument("--datasets", type=_csv(str), help="comma-separated dataset names")
    p.add_argument("--backbones", type=_csv(str), help="comma-separated timm model names")
    p.add_argument("--shots", type=csv_list(int, "shots per class"), help="shots per class, e.g. 10,100")
    p.add_argument("--modes", type=_csv(str), help="finetune,linear_probe,scratch")
    p.add_argument("--seeds", type=csv_list(int, "seeds"), help="subset/training seeds, e.g. 0,1,2")
    p.add_argument("--resolution", type=int, help="input size in px (the preset's by default)")
    p.add_argument("--steps", type=int, help="override the optimizer steps per learning rate")
    p.add_argument("--device", default="auto", type=device_arg, help="auto | cpu | cuda | cuda:N")
    p.add_argument("--retry-failed", action="store_true", help="run again the recorded failures")
    p.add_argument("--group-size", type=positive_int,
                   help="trainings run fused as one stacked model (runs of one backbone, dataset and shot level, "
                        "each learning rate a member; default 12 on a GPU, 1 on a CPU, where fusion is slower)")


def device_arg(text: str) -> str:
    """An argparse type: auto, cpu, cuda or cuda:N, refused at parse time otherwise (a typo such as
    ``gpu`` once passed the dry run and failed 23 s into the sweep)."""
    import re

    if re.fullmatch(r"auto|cpu|cuda(:\d+)?", text):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not a device; choose auto, cpu, cuda or cuda:N")


def add_execution_options(p) -> None:
    """Where the runs execute: this process, K local workers, a running Dask scheduler, or Slurm."""
    g = p.add_argument_group("workers (Dask)")
    g.add_argument("--workers", type=int, default=1, help="K single-threaded worker processes on this machine "
                   "(they share its GPUs round-robin); 1 runs in this process")
    g.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786")
    g.add_argument("--slurm", action="store_true", help="start the workers as Slurm jobs (dask-jobqueue)")
    g.add_argument("--partition", help="Slurm partition (--slurm)")
    g.add_argument("--gres", help="Slurm generic resources per job, e.g. gpu:1 (--slurm)")
    g.add_argument("--walltime", default="02:00:00", help="Slurm walltime per job (--slurm)")
    g.add_argument("--jobs", type=int, default=1, help="Slurm jobs, one worker each (--slurm)")
    g.add_argument("--job-script", action="store_true", help="with --slurm: print the job script and exit")


def check_execution_options(args) -> None:
    """Contradictory or impossible worker options, answered before any planning."""
    from backbone_bench.errors import InvalidParameterError

    if args.workers < 1:
        raise InvalidParameterError(f"--workers {args.workers}: give at least 1")
    if getattr(args, "deadline", None) is not None and args.deadline <= 0:
        raise InvalidParameterError(f"--deadline {args.deadline}: give the seconds the sweep may run, more than 0")
    if args.slurm and args.scheduler:
        raise InvalidParameterError("--slurm starts its own scheduler; drop --scheduler or --slurm")


def cluster_from_args(args):
    """The Dask cluster the options ask for (None: local workers or this process)."""
    check_execution_options(args)
    if not args.slurm:
        return None
    from backbone_bench.study.distributed import slurm_cluster

    return slurm_cluster(args.partition, args.gres, args.walltime, args.jobs)


def plan_from_args(args, everything: bool = False):
    """The plan the grid options describe; ``everything``: recorded runs too (for bundles)."""
    from backbone_bench.study.presets import narrow

    narrow(args.preset, args.datasets, args.backbones, args.shots, args.modes, args.seeds, args.resolution,
           args.steps, getattr(args, "group_size", None))  # a bad option answers before torch is imported
    from backbone_bench.study.plan import build_plan

    return build_plan(args.preset, args.datasets, args.backbones, args.shots, args.modes, args.seeds,
                      args.resolution, args.steps, retry_failed=args.retry_failed, skip_done=not everything,
                      group_members=getattr(args, "group_size", None))


def cmd_run(args) -> int:
    from backbone_bench import paths

    check_execution_options(args)
    paths.check_results(write=not args.dry_run)  # a dry run writes nothing, but a bad path is still named
    plan = plan_from_args(args)
    check_weights(plan.configs)  # before any compute, dry run or not: a backbone with no weights says why
    print(f"preset {plan.preset}: {len(plan.configs)} runs to do, {plan.skipped_done} already recorded"
          + (f", {len(plan.skipped_same)} shot levels skipped (same images as a smaller level: "
             f"{', '.join(f'{d}@{k}' for d, k in plan.skipped_same)})" if plan.skipped_same else ""))
    _print_projection(plan, args.device)
    if args.dry_run:
        for c in plan.configs:
            print(f"  {c['dataset']:16s} {c['shots']:5d}-shot {c['backbone']:28s} {c['mode']:12s} seed {c['seed']}")
        return 0
    cluster = cluster_from_args(args)
    if cluster is not None and args.job_script:
        print(cluster.job_script())
        cluster.close()
        return 0
    from backbone_bench import cpu_share

    cpu_share.announce()
    import torch

    from backbone_bench.study.execute import execute

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"training with {torch.get_num_threads()} torch threads (--threads N or OMP_NUM_THREADS to change; a "
          "second job on the same cores slows both several times)")
    counts = execute(plan, args.device, compile_model=args.compile, workers=args.workers, scheduler=args.scheduler,
                     cluster=cluster, deadline=args.deadline)
    print("finished: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) if counts else "nothing to run")
    if counts and plan.preset == "cpu":  # the edition's hours so far, or its real total once the grid is whole
        from backbone_bench.report.sweep_hours import sweep_hours_text

        print(sweep_hours_text(None, plan.preset))
    return 0


def check_weights(configs: list) -> None:
    """Every backbone the plan fine-tunes or probes resolves to ImageNet weights (a local file, or the
    Hub); else one error naming each that does not, why, and how to leave it out."""
    from backbone_bench.errors import BenchError, WeightsUnavailableError

    wanted = list(dict.fromkeys(c["backbone"] for c in configs if c.get("pretrained")))
    if not wanted:
        return
    from backbone_bench.models.backbones import resolve_weights

    missing = {}
    for name in wanted:
        try:
            resolve_weights(name)
        except WeightsUnavailableError as err:
            missing[name] = str(err)
    if missing:
        left = [b for b in wanted if b not in missing]
        raise BenchError("; ".join(m.rstrip(".") for m in missing.values())
                         + (f". Run the others: --backbones {','.join(left)}" if left else "."))


def _print_projection(plan, device: str) -> None:
    """The missing runs' projected hours from the committed measurement of this device, if any."""
    if not plan.configs:
        return
    from backbone_bench.environment import device_name, pick_device
    from backbone_bench.study import store
    from backbone_bench.study.budget import (MEASURE_COMMAND, PATH_CSV, calibrated_hours, measured_devices,
                                             projected_hours)

    name = device_name(pick_device(device))
    hours, unmeasured = projected_hours(plan.configs, name)
    if hours is None:
        # another processor's figure is not this one's (two named alike differed 1.9x), but it bounds the wait
        elsewhere = {d: h for d in measured_devices() if (h := projected_hours(plan.configs, d)[0]) is not None}
        print(f"no projection: {PATH_CSV.name} has no measurement of these backbones on {name} "
              f"(`{MEASURE_COMMAND}` measures it, about 8 minutes on 2 cores)"
              + ("; where measured, the same runs take " + ", ".join(f"{h:.1f} h on {d}" for d, h in elsewhere.items())
                 if elsewhere else ""))
        return
    print(f"projected: {hours:.1f} h on {name} (full step budgets, which early stopping shortens; probe fits not "
          "counted)" + (f", {unmeasured} runs unmeasured and not counted" if unmeasured else ""))
    calibrated, n = calibrated_hours(plan.configs, [r for r in store.read_records() if r.get("preset") == plan.preset],
                                     name)
    if calibrated is not None:
        print(f"  at the pace this preset's {n} recorded runs on {name} kept against their projection, mode by "
              f"mode: {calibrated:.1f} h")


def cmd_results(args) -> int:
    from backbone_bench.errors import InvalidParameterError
    from backbone_bench.study.store import compile_table

    if args.action == "merge":
        if not args.source:
            raise InvalidParameterError("results merge needs the folder to import: backbone-bench results merge DIR")
        from backbone_bench.study.merge import merge

        report = merge(args.source)
        print(report.summary())
        return 1 if report.refused else 0
    from backbone_bench import paths

    paths.check_results()
    if args.check:
        from backbone_bench.study.store import quarantined, read_records

        before = set(quarantined())
        records = read_records(deep=True)
        new = sorted(set(quarantined()) - before)
        print(f"{len(records)} records intact; {len(new)} damaged moved to {paths.results_dir() / 'runs' / '.quarantine'}"
              + "".join(f"\n  {p.name.removesuffix('.reason.txt')}: {p.read_text().strip()}" for p in new))
        if new:
            return 1
    table = compile_table()
    where = paths.results_dir()
    if not len(table):
        print(f"no records in {where / 'runs'}: nothing written")
        return 0
    print(f"{len(table)} records compiled into {where / 'runs.csv'} and {where / 'runs.parquet'}")
    print(table.groupby(["dataset", "mode", "status"]).size().to_string())
    return 0


def cmd_bundle(args) -> int:
    from backbone_bench.study.bundle import make_bundle

    plan = plan_from_args(args, everything=True)
    sizes = make_bundle(plan.configs, Path(args.out))
    for part, size in sizes.items():
        print(f"{part:40s} {size / 2**20:8.2f} MiB")
    print(f"bundle for {len(plan.configs)} runs in {args.out}: {sum(sizes.values()) / 2**20:.2f} MiB. On the other machine: "
          f"BACKBONE_BENCH_DATA={args.out} BACKBONE_BENCH_WEIGHTS={args.out}/weights backbone-bench run ...")
    return 0


def cmd_backbones(args) -> int:
    from backbone_bench.errors import WeightsUnavailableError
    from backbone_bench.models.panels import panel

    names = panel(args.panel)
    from backbone_bench.models.backbones import resolve_weights

    for name in names:
        try:
            w = resolve_weights(name)
            flags = ",".join(f for f in ("bn_folded", "int8_derived") if getattr(w, f)) or "-"
            print(f"{name:44s} {w.provenance:6s} {flags:24s} {w.source[:60]}")
        except WeightsUnavailableError:
            print(f"{name:44s} unavailable (no local file, Hub not reachable)")
    return 0


def cmd_cost(args) -> int:
    from backbone_bench.errors import InvalidParameterError
    from backbone_bench.models.panels import check_backbone, panel

    names = args.backbones or list(dict.fromkeys(n for p in args.panel for n in panel(p)))
    if min(args.train_batch, args.infer_batch) < 0 or min(args.repeats, args.resolution) < 1:
        raise InvalidParameterError("--train-batch, --infer-batch, --repeats and --resolution must be positive")
    for name in names:
        check_backbone(name)
    from backbone_bench.models.cost import measure
    from backbone_bench.environment import pick_device

    device = pick_device(args.device)
    cpu = device.type == "cpu"
    rows = measure(names, device, resolution=args.resolution,
                   train_batch=args.train_batch or (8 if cpu else 64), infer_batch=args.infer_batch or (32 if cpu else 256),
                   repeats=args.repeats, compile=args.compile, channels_last=args.channels_last)
    cols = ["backbone", "status", "params_m", "gmacs", "train_images_per_s", "infer_images_per_s", "latency_ms_median"]
    print(rows[[c for c in cols if c in rows]].to_string(index=False, float_format="%.2f"))
    return 0


def cmd_study(args) -> int:
    from backbone_bench.study.presets import get_preset

    if args.preset is not None:
        get_preset(args.preset)  # a typo answers before the study's imports
    check_execution_options(args)
    from backbone_bench.report.build import run_study

    html = run_study(args.preset, args.root, args.results, run=not args.no_run, device=args.device,
                     build=not args.no_build, n_boot=args.n_boot, workers=args.workers, scheduler=args.scheduler,
                     cluster=cluster_from_args(args))
    if html:
        print(f"book built: {html / 'index.html'}")
    return 0


def cmd_release(args) -> int:
    from backbone_bench.report.release import release

    out = release(args.preset, args.out, args.results, args.n_boot)
    files = sorted(p for p in out.rglob("*") if p.is_file())
    print(f"edition {args.preset} written to {out}: {len(files)} files, "
          f"{sum(p.stat().st_size for p in files) / 2**20:.1f} MiB; check with: cd {out} && sha256sum -c SHA256SUMS")
    return 0


def cmd_page(args) -> int:
    from backbone_bench.errors import InvalidParameterError
    from backbone_bench.report.page import run_page, value

    params = {name: value(text) for name, text in args.p or []}
    for text in args.y or []:  # papermill's -y: YAML for what -p cannot type (lists)
        import yaml

        loaded = yaml.safe_load(text)
        if not isinstance(loaded, dict):
            raise InvalidParameterError(f"-y {text!r} is not YAML of name: value (e.g. -y \"shots: [10, 100]\")")
        params |= loaded
    html = run_page(args.template, args.out, params, progress=not args.no_progress_bar)
    print(f"page: {html}\nexecuted notebook: {Path(args.out).resolve() / (args.template + '.ipynb')}")
    return 0


def cmd_recommend(args) -> int:
    from backbone_bench.recommend.run import recommend  # checks settings and input before it imports torch

    recommend(args.path, args.out, args.panel, args.backbones, args.top, args.seeds, args.resolution,
              not args.no_flip, args.device, args.steps, args.workers, args.n_boot, report=not args.no_report,
              screen_only=args.screen_only)
    return 0


def register(sub) -> None:
    p = sub.add_parser("recommend", help="which backbone for YOUR images: screen the panel, fine-tune the best, report",
                       description="Answer the study's question on your own labelled images: screen every backbone of "
                                   "the panel with a linear probe, fine-tune the top k with the study's recipe, seeds "
                                   "and learning rates (plus a scratch twin of the best), and write OUT/report.html, "
                                   "OUT/summary.csv and OUT/summary.json. Rerun the same command to continue.")
    p.add_argument("path", help="a folder with one subfolder per class, a CSV of path,label (optional split), or a "
                                "Parquet file (or folder of them) in the Hugging Face image layout")
    p.add_argument("--panel", default="offline", help="the backbones to screen: a panel name (offline, lightweight, seed)")
    p.add_argument("--backbones", type=_csv(str), help="screen these timm names instead of the panel")
    p.add_argument("--top", type=int, default=3, help="fine-tune this many of the screen's best (default 3)")
    p.add_argument("--seeds", type=int, default=3, help="training seeds per candidate, 1-3 (default 3)")
    p.add_argument("--resolution", type=int, default=224, help="input size in px (default 224)")
    p.add_argument("--no-flip", action="store_true", help="no horizontal flips (when a flip changes the label)")
    p.add_argument("--device", default="auto", type=device_arg, help="auto | cpu | cuda | cuda:N")
    p.add_argument("--steps", type=int, help="optimizer steps per learning rate (default: the study's budget)")
    p.add_argument("--workers", type=int, default=1, help="local Dask worker processes (default: this process)")
    p.add_argument("--out", help="output folder (default ./recommend-<input name>)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates behind the intervals")
    p.add_argument("--no-report", action="store_true", help="write summary.csv/json but not report.html")
    p.add_argument("--screen-only", action="store_true", help="stop after the linear-probe screen (minutes on a CPU)")
    p.set_defaults(func=cmd_recommend, trains=True)
    p = sub.add_parser("cost", help="parameters, GMACs, throughput, latency, memory -> results/cost.csv")
    p.add_argument("--panel", type=_csv(str), default=["lightweight", "seed", "offline"], help="panels to measure")
    p.add_argument("--backbones", type=_csv(str), help="measure these instead of panels")
    p.add_argument("--device", default="auto", type=device_arg, help="auto | cpu | cuda | cuda:N")
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--train-batch", type=int, default=0, help="default 64 on GPU, 8 on CPU")
    p.add_argument("--infer-batch", type=int, default=0, help="default 256 on GPU, 32 on CPU")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--compile", action="store_true", help="torch.compile the model first")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="default: on for CUDA, off for CPU")
    p.set_defaults(func=cmd_cost)
    p = sub.add_parser("study", help="the whole study: sweep (resuming), notebooks via papermill, the book")
    p.add_argument("--preset", default=None, help=f"one of: {', '.join(PRESET_NAMES)}; default: the published edition "
                                                    "(cpu, whole or partial)")
    p.add_argument("--root", help="where the book is built (default: the repo for offline, else _build/books/PRESET)")
    p.add_argument("--results", help="results folder (default: results/)")
    p.add_argument("--device", default="auto", type=device_arg, help="auto | cpu | cuda | cuda:N")
    p.add_argument("--run", dest="no_run", action="store_false", default=True,
                   help="train the runs not yet recorded first (may take hours; without it the book reports the "
                        "recorded runs and says what is missing)")
    p.add_argument("--no-run", dest="no_run", action="store_true", help="report the recorded runs only (the default)")
    p.add_argument("--no-build", action="store_true", help="execute the notebooks but do not build the site")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap draws for the intervals")
    add_execution_options(p)
    p.set_defaults(func=cmd_study, trains=True)
    p = sub.add_parser("run", help="run a preset's sweep, resuming; failures are recorded and skipped")
    add_grid_options(p)
    p.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    p.add_argument("--compile", action="store_true", help="torch.compile each model (speed only; CUDA)")
    p.add_argument("--threads", type=positive_int, help="torch threads for training here (default: torch's own, "
                                                       "which OMP_NUM_THREADS sets); printed at the start")
    p.add_argument("--deadline", type=float, metavar="SECONDS",
                   help="start no group that would end past SECONDS from now (judged by the group before); "
                        "finish the one in flight and exit cleanly")
    add_execution_options(p)
    p.set_defaults(func=cmd_run, trains=True)
    p = sub.add_parser("results", help="rebuild results/runs.csv|parquet from the records; "
                                       "`results merge DIR` imports records made elsewhere, verified")
    p.add_argument("action", nargs="?", choices=["merge"], help="merge: import the records of another results folder")
    p.add_argument("source", nargs="?", help="for merge: the results folder to import")
    p.add_argument("--check", action="store_true", help="open every record and its predictions; move damaged ones "
                                                        "aside (runs/.quarantine/) and exit 1 if there were any")
    p.set_defaults(func=cmd_results)
    p = sub.add_parser("bundle", help="just the images and weights some runs read, for a machine without the mirror")
    add_grid_options(p)
    p.add_argument("--out", required=True, help="folder to write (then BACKBONE_BENCH_DATA=OUT)")
    p.set_defaults(func=cmd_bundle)
    p = sub.add_parser("release", help="an edition as a folder to download and cite: tables, records, datasheet, "
                                       "SHA256SUMS")
    p.add_argument("--preset", required=True, help=f"one of: {', '.join(PRESET_NAMES)}")
    p.add_argument("--out", required=True, help="the folder to write (new or empty)")
    p.add_argument("--results", help="results folder (default: results/)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap draws for the intervals")
    p.set_defaults(func=cmd_release)
    p = sub.add_parser("page", help="one page of the book rerun with your parameters, rendered as HTML",
                       description="Execute a page template (notebooks/TEMPLATE.ipynb) with papermill's -p "
                                   "parameters and render it as a page of its own, glued numbers and banners resolved "
                                   "(Jupyter shows them as raw MyST). Writes only under OUT.")
    p.add_argument("template", help="summary | ranking | cost | domain | recommend")
    p.add_argument("out", help="folder for the executed notebook and the HTML page")
    p.add_argument("-p", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="a template parameter, as papermill takes it (e.g. -p preset cpu -p domain medical)")
    p.add_argument("-y", action="append", metavar="YAML",
                   help="parameters as YAML, as papermill takes them (e.g. -y \"backbones: [regnetx_002]\")")
    p.add_argument("--no-progress-bar", action="store_true", help="no per-cell progress in the terminal")
    p.set_defaults(func=cmd_page, trains=True)
    p = sub.add_parser("backbones", help="a panel's backbones and where their weights resolve")
    p.add_argument("panel", nargs="?", default="offline")
    p.set_defaults(func=cmd_backbones)
