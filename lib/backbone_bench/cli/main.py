"""``backbone-bench``: the one command line. Subcommands are thin; the work lives in the modules."""
from __future__ import annotations

import argparse
import sys

from backbone_bench.errors import BenchError


# ---- data ---------------------------------------------------------------------------------
def cmd_data_list(args) -> int:
    from backbone_bench.data.registry import DATASETS

    from backbone_bench.data.sources import offline

    print(f"{'dataset':18s} {'domain':15s} {'classes':>7s}  {'flip':4s}  resolves to")
    for spec in DATASETS.values():
        print(f"{spec.name:18s} {spec.domain:15s} {spec.num_classes:7d}  {'yes' if spec.flip_ok else 'no':4s}  "
              f"{_resolves(spec, offline())}")
    return 0


def _resolves(spec, is_offline: bool) -> str:
    """Where prepare would read the dataset from, without downloading anything."""
    for source in spec.sources:
        if not source.download:
            where = source.locate()
            if where is not None:
                return f"{where} (mirror)"
        elif not is_offline:
            return f"{source.describe()} (download on first use)"
    return "nowhere: " + ("offline, and no mirror has it" if is_offline else "no source") + \
        " (sources: " + " | ".join(s.describe() for s in spec.sources) + ")"


def cmd_data_prepare(args) -> int:
    from backbone_bench.data.card import summary
    from backbone_bench.data.prepare import prepare
    from backbone_bench.data.splits import load_splits

    for name in args.names:
        prepared = prepare(name, on_corrupt=args.on_corrupt)
        splits = load_splits(prepared)
        print(" ".join(f"{k}={v}" for k, v in summary(prepared, splits).items()))
    return 0


def cmd_data_card(args) -> int:
    from backbone_bench import paths
    from backbone_bench.data.card import class_counts, near_duplicate_grid, sample_grid, summary
    from backbone_bench.data.prepare import prepare
    from backbone_bench.data.splits import load_splits

    for name in args.names:
        prepared = prepare(name)
        splits = load_splits(prepared)
        out = paths.results_dir() / "cards"
        counts = class_counts(prepared, splits)
        out.mkdir(parents=True, exist_ok=True)
        counts.to_csv(out / f"{name}_counts.csv")
        grid = sample_grid(prepared, splits, out / f"{name}_samples.png")
        pairs = near_duplicate_grid(prepared, splits, out / f"{name}_near_duplicates.png")
        print(f"# {name}")
        for key, value in summary(prepared, splits).items():
            print(f"{key:32s} {value}")
        print(counts.to_string())
        print(f"wrote {out / f'{name}_counts.csv'}, {grid}" + (f" and {pairs}" if pairs else ""))
    return 0


def cmd_data_export(args) -> int:
    from backbone_bench.data.export import export

    written = export(args.name, args.out, args.per_class, args.classes.split(",") if args.classes else None, args.split)
    print(f"wrote {sum(written.values())} images in {len(written)} class folders under {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backbone-bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="datasets: list, prepare, card, export").add_subparsers(dest="action",
                                                                                            required=True)
    data.add_parser("list", help="the dataset registry").set_defaults(func=cmd_data_list)
    p = data.add_parser("prepare", help="decode once into cached uint8 arrays and write the split files")
    p.add_argument("names", nargs="+")
    p.add_argument("--on-corrupt", choices=("skip", "error"), default="skip")
    p.set_defaults(func=cmd_data_prepare)
    p = data.add_parser("card", help="class counts, duplicates, near-duplicate pairs and a sample grid (results/cards/)")
    p.add_argument("names", nargs="+")
    p.set_defaults(func=cmd_data_card)
    p = data.add_parser("export", help="write a dataset out as an image folder (one subfolder per class)")
    p.add_argument("name")
    p.add_argument("out")
    p.add_argument("--per-class", type=int, help="at most this many images per class (the source's first)")
    p.add_argument("--classes", help="comma-separated classes to export (default: all)")
    p.add_argument("--split", choices=("train", "val", "test"), help="only the images the source puts in this split")
    p.set_defaults(func=cmd_data_export)

    from backbone_bench.cli import commands  # the study's subcommands: run, cost, study

    commands.register(sub)
    return parser


def _terminated(signum, frame):
    print("backbone-bench: stopped (SIGTERM): the run in flight is abandoned, every written record is whole; "
          "the same command resumes", file=sys.stderr)
    raise SystemExit(128 + signum)


def plain_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as the terminal shows it: one line, ``warning: ...``, not Python's category and the
    source line that raised it (a reader acts on the message, not on our file and line)."""
    return f"warning: {message}\n"


def main(argv=None) -> int:
    import signal

    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `backbone-bench ... | head` ends quietly
    signal.signal(signal.SIGTERM, _terminated)       # a stopped sweep unwinds: claims released, records whole
    import warnings

    warnings.formatwarning = plain_warning
    args = build_parser().parse_args(argv)
    if getattr(args, "trains", False) and not getattr(args, "dry_run", False):
        from backbone_bench import cpu_share

        cpu_share.defer(cpu_share.choose())  # before torch loads its OpenMP runtime; said once input is checked
    try:
        return args.func(args)
    except BenchError as err:
        print(f"backbone-bench: error: {err}", file=sys.stderr)
        return 2
