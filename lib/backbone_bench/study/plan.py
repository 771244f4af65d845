"""Planning: the cross product of a preset, less what is recorded, cut into groups that train fused.

A run's config (dataset, shots, subset seed, seed, backbone, mode, resolution, recipe) is
hashed into its key; the record under that key is the run. Runs that share architecture,
dataset, shot level, resolution and recipe (all but the learning-rate grid: seeds and
fine-tune/scratch differ) form a group; each of their learning rates is a member of it.
Linear probes are groups of one (their features are shared through a cache instead).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace

from backbone_bench.study import store
from backbone_bench.data.prepare import prepare
from backbone_bench.data.splits import load_splits
from backbone_bench.study.presets import get_preset, narrow

GROUP_MEMBERS = 12  # 2 learning rates x 3 seeds x {fine-tune, scratch}: the offline grid's natural group


@dataclass
class Plan:
    preset: str
    configs: list          # configs still to run
    skipped_done: int      # already recorded
    skipped_same: list     # (dataset, shots): the subset equals a smaller shot level's
    label: str = ""        # the progress bar's name (default: "sweep <preset>")
    group_members: int | None = None   # trainings fused per group; None: by device (GROUP_MEMBERS on a GPU)

    def groups(self, device_type: str = "cuda") -> list[list[dict]]:
        """The configs cut into groups. On a CPU fusion mostly costs time (4 channel-fused trainings
        ran at 0.60-0.92x the solo engine's images/s for five of the six offline backbones, 1.24x for
        tf_mobilenetv3_small_100: results/benchmarks/train_throughput_cpu.csv), so by default a CPU
        trains one run at a time."""
        n = self.group_members or (GROUP_MEMBERS if device_type == "cuda" else 1)
        return make_groups(self.configs, n)


def group_key(config: dict) -> str:
    """What the runs of one fused group share: everything but seeds, mode and learning rates."""
    if config["mode"] == "linear_probe":
        return store.config_key(config)
    recipe = {k: v for k, v in config["recipe"].items() if k != "lrs"}
    return json.dumps([config["dataset"], config["shots"], config["backbone"], config["resolution"], recipe],
                      sort_keys=True)


def make_groups(configs: list, members: int = GROUP_MEMBERS) -> list[list[dict]]:
    """Configs grouped by ``group_key`` in plan order; a group holds at most ``members``
    trainings (a run brings one per learning rate; a run is never split across groups)."""
    groups: dict = {}
    for config in configs:
        chunks = groups.setdefault(group_key(config), [[]])
        used = sum(len(c["recipe"]["lrs"]) for c in chunks[-1])
        if chunks[-1] and used + len(config["recipe"]["lrs"]) > members:
            chunks.append([])
        chunks[-1].append(config)
    return [chunk for chunks in groups.values() for chunk in chunks]


def build_plan(preset: str, datasets=None, backbones=None, shots=None, modes=None, seeds=None,
               resolution=None, steps=None, results=None, retry_failed=False, skip_done=True,
               group_members: int | None = None) -> Plan:
    """Every parameter is checked first (presets.narrow), before any compute; a bad one raises naming itself."""
    g = narrow(preset, datasets, backbones, shots, modes, seeds, resolution, steps, group_members)
    p = g.preset
    records = store.read_records(results) if skip_done else []
    done = store.done_keys(include_failed=not retry_failed, records=records) if skip_done else set()
    remakes = {r["key"] for r in records if store.outdated(r)}  # recorded, but to be made again
    current = {r["key"] for r in records if r["status"] == "ok" and not store.outdated(r)}
    configs, skipped_done, skipped_same = [], 0, []
    for config in _grid(p, g.datasets, g.backbones, g.shots, g.modes, g.seeds, g.resolution, steps, skipped_same):
        if store.config_key(config) in done:
            skipped_done += 1
        else:
            configs.append(config)
    if p.shots_first:  # stable: datasets, backbones, modes and seeds keep their order within a level
        configs.sort(key=lambda c: (c["mode"] != "linear_probe", c["shots"]))
    if p.level_first:  # each shot level whole before the next: a finished level is a complete answer
        configs.sort(key=lambda c: (c["shots"], c["mode"] != "linear_probe"))
    # remakes first (a record in another precision, of an older engine or of code in no commit, or a
    # run whose predecessor selected on all of validation): they make an edition's existing cells
    # equal before new cells (a new backbone) are added to it
    configs.sort(key=lambda c: store.config_key(c) not in remakes and predecessor_key(c) not in current)
    return Plan(preset, configs, skipped_done, skipped_same, group_members=group_members)


def grid_keys(preset: str, datasets=None) -> set[str]:
    """The keys of every run the preset asks for (of ``datasets``: all), recorded or not: what its book reports."""
    return {cell["key"] for cell in grid_cells(preset, datasets)}


def grid_cells(preset: str, datasets=None) -> list[dict]:
    """Every run the preset asks for as (key, dataset, shots, mode), of ``datasets`` (None: all of the
    preset's): what its book counts as missing. A page of one domain reads only its datasets' data."""
    p = get_preset(preset)  # not build_plan: its name checks import timm, whose tqdm warns inside the book's kernels
    names = [d for d in p.datasets if datasets is None or d in datasets]
    return [dict(key=store.config_key(c), dataset=c["dataset"], shots=c["shots"], mode=c["mode"],
                 backbone=c["backbone"], predecessor=predecessor_key(c))
            for c in _grid(p, names, p.backbones, p.shots, p.modes, p.seeds, p.resolution, None, [])]


def predecessor_key(config: dict) -> str | None:
    """The key of the run a clean-selected config replaces: the same config selected on all of
    validation, twins of training-pool images included (how the `cpu` edition's gradient runs were
    made until issue 46). Its record stands in on the pages until every rerun of its cell is
    recorded (report/load.with_stand_ins). None where the config selects on all of validation."""
    if config["recipe"].get("val_select") != "clean":
        return None
    recipe = {k: v for k, v in config["recipe"].items() if k != "val_select"}  # "all" is neutral: not in the key
    return store.config_key({**config, "recipe": recipe})


def cut_configs(preset: str) -> list[dict]:
    """The runs the preset's per-mode cuts (``shots_by_mode``, ``seeds_by_mode``) leave out of its
    cross product: what its budget cost the design."""
    p = get_preset(preset)
    kept = grid_keys(preset)
    whole = replace(p, shots_by_mode={}, seeds_by_mode={})
    return [c for c in _grid(whole, p.datasets, p.backbones, p.shots, p.modes, p.seeds, p.resolution, None, [])
            if store.config_key(c) not in kept]


def _grid(p, datasets, backbones, shots, modes, seeds, resolution, steps, skipped_same):
    """The configs of the cross product, in sweep order (``skipped_same`` collects the shot
    levels left out because their subsets equal a smaller level's)."""
    for dataset in datasets:
        prepared = prepare(dataset, progress=False)
        splits = load_splits(prepared)
        val_twins = _has_val_twins(prepared, splits)
        previous = None
        for k in sorted(shots):
            effective = splits.effective_shots(k)
            if effective == previous:
                skipped_same.append((dataset, k))
                continue
            previous = effective
            for backbone in backbones:
                for mode in modes:
                    if k not in p.shots_by_mode.get(mode, (k,)):
                        continue
                    recipe = p.recipe_for(mode, k)
                    if steps is not None:
                        recipe = replace(recipe, steps=steps)
                    if recipe.val_select == "clean" and not val_twins:  # the same computation: the same key
                        recipe = replace(recipe, val_select="all")
                    for seed in [s for s in seeds if s in p.seeds_by_mode.get(mode, seeds)]:
                        yield make_config(dataset, k, seed, backbone, mode, resolution, recipe)


def _has_val_twins(prepared, splits) -> bool:
    """Whether any validation image of the dataset has a twin in its pool (data/twins.py)."""
    from backbone_bench.data import twins

    return len(twins.left_out(twins.load_twins(prepared, splits), "val")) > 0


def make_config(dataset: str, shots: int, seed: int, backbone: str, mode: str, resolution: int, recipe) -> dict:
    """One run's config: what its key hashes. The subset seed is the training seed."""
    config = dict(dataset=dataset, shots=shots, subset_seed=seed, seed=seed, backbone=backbone, mode=mode,
                  pretrained=mode != "scratch", resolution=resolution, recipe=recipe.as_dict())
    if mode == "scratch":  # same network and normalisation as the pretrained run
        config["init"] = "random-twin"
    return config


