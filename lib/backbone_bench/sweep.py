"""Plan the cross product of a preset, skip what is recorded, run the rest, never stop the sweep.

A run's config (dataset, shots, subset seed, seed, backbone, mode, resolution, recipe) is
hashed into its key; the record under that key is the run. A failed run (weights unavailable,
diverged, out of memory, any other error) is recorded with its reason and the sweep goes on;
``retry_failed`` runs those again.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import numpy as np
import torch
from tqdm import tqdm

from backbone_bench import store
from backbone_bench.augment import normalize, resize
from backbone_bench.backbones import check_backbone, create_model, reestimate_folded_batchnorm, resolve_weights
from backbone_bench.data.prepare import prepare
from backbone_bench.data.registry import get_dataset
from backbone_bench.data.splits import SUBSET_SEEDS, load_splits
from backbone_bench.environment import environment, pick_device
from backbone_bench.errors import InvalidParameterError, WeightsUnavailableError
from backbone_bench.metrics import classification_metrics, collapsed
from backbone_bench.presets import get_preset
from backbone_bench.train import MODES, Diverged, Split, extract_features, linear_probe, train_gradient


class OutOfMemory(RuntimeError):
    pass


@dataclass
class Plan:
    preset: str
    configs: list          # configs still to run
    skipped_done: int      # already recorded
    skipped_same: list     # (dataset, shots): the subset equals a smaller shot level's
    label: str = ""        # the progress bar's name (default: "sweep <preset>")


def build_plan(preset: str, datasets=None, backbones=None, shots=None, modes=None, seeds=None,
               resolution=None, steps=None, results=None, retry_failed=False, skip_done=True) -> Plan:
    """Every parameter is checked here, before any compute; a bad one raises naming itself."""
    p = get_preset(preset)
    datasets = list(datasets or p.datasets)
    backbones = list(backbones or p.backbones)
    shots = list(shots or p.shots)
    modes = list(modes or p.modes)
    seeds = list(seeds if seeds is not None else p.seeds)
    resolution = resolution or p.resolution
    for name in datasets:
        get_dataset(name)
    for name in backbones:
        check_backbone(name)
    if bad := [m for m in modes if m not in MODES]:
        raise InvalidParameterError(f"modes {bad} unknown; choose from {', '.join(MODES)}")
    if bad := [s for s in shots if not isinstance(s, int) or s < 1]:
        raise InvalidParameterError(f"shots {bad}: shots are positive numbers of images per class")
    if bad := [s for s in seeds if s not in SUBSET_SEEDS]:
        raise InvalidParameterError(f"seeds {bad}: the committed subsets exist for seeds {list(SUBSET_SEEDS)}")
    if not 16 <= resolution <= 1024:
        raise InvalidParameterError(f"resolution {resolution}: choose an input size between 16 and 1024 px")
    if steps is not None and steps < 1:
        raise InvalidParameterError(f"steps {steps}: a run needs at least one optimizer step")

    done = store.done_keys(results, include_failed=not retry_failed) if skip_done else set()
    configs, skipped_done, skipped_same = [], 0, []
    for config in _grid(p, datasets, backbones, shots, modes, seeds, resolution, steps, skipped_same):
        if store.config_key(config) in done:
            skipped_done += 1
        else:
            configs.append(config)
    return Plan(preset, configs, skipped_done, skipped_same)


def grid_keys(preset: str) -> set[str]:
    """The keys of every run the preset asks for, recorded or not: what its book reports."""
    p = get_preset(preset)  # not build_plan: its name checks import timm, whose tqdm warns inside the book's kernels
    return {store.config_key(c) for c in _grid(p, p.datasets, p.backbones, p.shots, p.modes, p.seeds, p.resolution,
                                                None, [])}


def _grid(p, datasets, backbones, shots, modes, seeds, resolution, steps, skipped_same):
    """The configs of the cross product, in sweep order (``skipped_same`` collects the shot
    levels left out because their subsets equal a smaller level's)."""
    for dataset in datasets:
        splits = load_splits(prepare(dataset, progress=False))
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
                    for seed in [s for s in seeds if s in p.seeds_by_mode.get(mode, seeds)]:
                        yield make_config(dataset, k, seed, backbone, mode, resolution, recipe)


def make_config(dataset: str, shots: int, seed: int, backbone: str, mode: str, resolution: int, recipe) -> dict:
    """One run's config: what its key hashes. The subset seed is the training seed."""
    config = dict(dataset=dataset, shots=shots, subset_seed=seed, seed=seed, backbone=backbone, mode=mode,
                  pretrained=mode != "scratch", resolution=resolution, recipe=recipe.as_dict())
    if mode == "scratch":  # same network and normalisation as the pretrained run
        config["init"] = "random-twin"
    return config


def _to_device(prepared, index, resolution, device) -> Split:
    images = torch.from_numpy(np.ascontiguousarray(prepared.images[index])).permute(0, 3, 1, 2).to(device)
    labels = torch.from_numpy(prepared.labels[index].astype(np.int64)).to(device)
    # kept at min(storage, resolution): small images are upsampled per batch, never stored large
    return Split(resize(images, min(resolution, images.shape[-1])), labels, resolution)


class FeatureCache:
    """Frozen-backbone features per (weights, data, resolution), computed once per image.

    Linear probes of every shot level and seed share one extraction; the val and test
    features are computed once per backbone and dataset, not once per run.
    """

    def __init__(self, max_entries: int = 8):
        self.entries: dict = {}
        self.max_entries = max_entries

    def get(self, weights, prepared, index: np.ndarray, split: Split, batch: int, device) -> np.ndarray:
        key = (weights.backbone, weights.provenance, weights.sha256, prepared.key, split.size)
        if key not in self.entries:
            if len(self.entries) >= self.max_entries:
                self.entries.pop(next(iter(self.entries)))
            model = create_model(weights, resolution=split.size).to(device)
            model.reset_classifier(0)  # the network now returns pooled features
            self.entries[key] = dict(model=model, rows={})
        entry = self.entries[key]
        missing = np.asarray([i for i in index.tolist() if i not in entry["rows"]], dtype=np.int64)
        if len(missing):
            position = {i: p for p, i in enumerate(index.tolist())}
            sub = Split(split.images[[position[i] for i in missing.tolist()]], split.labels[:0], split.size)
            feats = extract_features(entry["model"], sub, weights.mean, weights.std, batch, device)
            entry["rows"].update(zip(missing.tolist(), feats))
        return np.stack([entry["rows"][i] for i in index.tolist()])


FEATURES = FeatureCache()


def run_one(config: dict, device: torch.device, progress=None, compile_model: bool = False) -> tuple[dict, dict]:
    """Train and evaluate one config; returns (record fields, arrays). Raises on failure."""
    from backbone_bench.train import Recipe

    recipe = Recipe(**{k: tuple(v) if isinstance(v, list) else v for k, v in config["recipe"].items()})
    spec = get_dataset(config["dataset"])
    prepared = prepare(spec.name, progress=False)
    splits = load_splits(prepared)
    weights = resolve_weights(config["backbone"], pretrained=config["pretrained"])
    index = dict(train=splits.train(config["shots"], config["subset_seed"]), val=splits.val, test=splits.test)
    if recipe.eval_limit:  # a preset's cap on evaluation cost, recorded in its config: a fixed seeded draw
        for part in ("val", "test"):
            if len(index[part]) > recipe.eval_limit:
                index[part] = np.sort(np.random.default_rng(0).permutation(index[part])[: recipe.eval_limit])
    data = {k: _to_device(prepared, v, config["resolution"], device) for k, v in index.items()}
    mean, std, n_cls = weights.mean, weights.std, spec.num_classes

    if config["mode"] == "linear_probe":
        start = time.perf_counter()
        feats = {k: FEATURES.get(weights, prepared, index[k], data[k], recipe.eval_batch, device) for k in index}
        labels = {k: prepared.labels[v].astype(np.int64) for k, v in index.items()}
        fit = linear_probe(feats, labels, recipe, n_cls, config["seed"], time.perf_counter() - start)
        micro = None
    else:
        def factory():
            model = create_model(weights, n_cls, config["resolution"])
            if weights.bn_folded:
                sample = data["train"].images[: recipe.bn_reestimate_images]
                reestimate_folded_batchnorm(model.to(device), normalize(resize(sample, data["train"].size), mean, std))
            return model

        micro = recipe.batch_size
        while True:
            try:
                fit = train_gradient(factory, data["train"], data["val"], data["test"], recipe, recipe.lrs,
                                     spec.flip_ok, mean, std, n_cls, device, config["seed"], micro, progress,
                                     compile_model)
                break
            except torch.OutOfMemoryError as err:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                if micro == 1:
                    raise OutOfMemory(f"out of memory even at micro-batch 1: {err}") from None
                micro //= 2  # same effective batch, accumulated over more, smaller passes

    labels = {k: data[k].labels.cpu().numpy() for k in ("val", "test")}
    metrics = {"val": classification_metrics(fit.probs_val, labels["val"], n_cls),
               "test": classification_metrics(fit.probs_test, labels["test"], n_cls)}
    record = dict(metrics=metrics, chosen=fit.chosen, curves=fit.curves, weights=weights.row(),
                  n_train=len(index["train"]), n_val=len(index["val"]), n_test=len(index["test"]),
                  effective_shots=splits.effective_shots(config["shots"]), micro_batch=micro,
                  subset_shared=bool(splits.shared_subset(config["shots"])), splits_digest=splits.digest(),
                  data_key=prepared.key, collapsed=collapsed(fit.probs_test.argmax(1)),
                  timing=dict(train_seconds=round(fit.train_seconds, 3),
                              train_images_per_second=round(fit.images_seen / max(fit.train_seconds, 1e-9), 1)))
    small = np.uint8 if n_cls <= 255 else np.int16
    arrays = dict(test_index=index["test"].astype(np.int32), test_pred=fit.probs_test.argmax(1).astype(small),
                  test_label=labels["test"].astype(small), test_prob=fit.probs_test.astype(np.float16))
    return record, arrays


def record_base(config: dict, preset: str, env: dict, compile_model: bool = False) -> dict:
    """What every record says about its run, whatever its outcome."""
    return dict(key=store.config_key(config), config=config, preset=preset,
                environment=env | dict(compiled=compile_model))


def run_config(config: dict, preset: str, device: torch.device, env: dict, compile_model: bool = False):
    """One config to (record, arrays): every failure becomes a record with its reason."""
    start = time.perf_counter()
    base = record_base(config, preset, env, compile_model)
    try:
        fields, arrays = run_one(config, device, compile_model=compile_model)
        record = base | dict(status="ok") | fields
    except WeightsUnavailableError as err:
        record, arrays = base | dict(status="unavailable", reason=str(err)), None
    except Diverged as err:
        record, arrays = base | dict(status="diverged", reason=str(err)), None
    except OutOfMemory as err:
        record, arrays = base | dict(status="oom", reason=str(err)), None
    except Exception as err:  # recorded, and the sweep goes on
        record, arrays = base | dict(status="error", reason=f"{type(err).__name__}: {err}",
                                     traceback=traceback.format_exc(limit=6)), None
    record.setdefault("timing", {})["total_seconds"] = round(time.perf_counter() - start, 3)
    record["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return record, arrays


def execute(plan: Plan, device: str = "auto", results=None, progress: bool = True, compile_model: bool = False,
            workers: int = 1, scheduler: str | None = None, cluster=None) -> dict:
    """Run every planned config, recording each outcome. Returns counts by status.

    ``workers`` > 1, a ``scheduler`` address or a dask ``cluster`` run the configs as Dask tasks
    (distributed.py); the driver alone writes records. Either way a config another driver has
    claimed, or recorded meanwhile, is skipped and counted as "elsewhere"."""
    if workers > 1 or scheduler or cluster is not None:
        from backbone_bench.distributed import execute_distributed

        return execute_distributed(plan, device, results, progress, compile_model, workers, scheduler, cluster)
    dev = pick_device(device)
    env = environment(dev)
    counts: dict[str, int] = {}
    bar = tqdm(plan.configs, desc=plan.label or f"sweep {plan.preset}", unit="run", disable=not progress)
    for config in bar:
        key = store.config_key(config)
        if not store.claim(key, results):
            counts["elsewhere"] = counts.get("elsewhere", 0) + 1
            continue
        bar.set_postfix_str(f"{config['dataset']} {config['shots']}-shot {config['backbone']} {config['mode']} s{config['seed']}")
        try:
            record, arrays = run_config(config, plan.preset, dev, env, compile_model)
            store.write_record(record, arrays, results)
        finally:
            store.release(key, results)
        counts[record["status"]] = counts.get(record["status"], 0) + 1
    store.compile_table(results)
    return counts
