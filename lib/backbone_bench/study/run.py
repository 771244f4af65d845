"""Running: one group of configs to one record per config, whatever happens to each.

A gradient group's configs (each at every learning rate of its grid) train fused
(train.fit_runs); a linear probe reads the frozen backbone's features from a cache shared by
every shot level and seed. A failure (weights unavailable, diverged, out of memory, any other
error) becomes that run's record with its reason; the others in the group go on.
"""
from __future__ import annotations

import traceback
from datetime import datetime, timezone

import numpy as np
import torch

from backbone_bench.clock import Stopwatch
from backbone_bench.study import store
from backbone_bench.engine.augment import normalize, resize
from backbone_bench.models.backbones import create_model, reestimate_folded_batchnorm, resolve_weights
from backbone_bench.data.prepare import prepare
from backbone_bench.data.registry import get_dataset
from backbone_bench.data.splits import load_splits
from backbone_bench.errors import WeightsUnavailableError
from backbone_bench.engine.features import FEATURES
from backbone_bench.engine.metrics import classification_metrics, collapsed
from backbone_bench.engine.recipe import recipe_precision
from backbone_bench.engine.speed import exact_fp32, precision, speed_options
from backbone_bench.engine.train import DeviceLost, Diverged, Member, OutOfMemory, Recipe, Split, fit_runs, linear_probe

FAILURES = ((WeightsUnavailableError, "unavailable"), (Diverged, "diverged"), (OutOfMemory, "oom"))


def _to_device(prepared, index, resolution, device) -> Split:
    images = torch.from_numpy(np.ascontiguousarray(prepared.images[index])).permute(0, 3, 1, 2).to(device)
    labels = torch.from_numpy(prepared.labels[index].astype(np.int64)).to(device)
    # kept at min(storage, resolution): small images are upsampled per batch, never stored large
    return Split(resize(images, min(resolution, images.shape[-1])), labels, resolution)


class _Data:
    """A dataset's splits on the device for one group: val and test once, a training subset per seed."""

    def __init__(self, config: dict, recipe: Recipe, device):
        self.spec = get_dataset(config["dataset"])
        self.prepared = prepare(self.spec.name, progress=False)
        self.splits = load_splits(self.prepared)
        self.resolution, self.device, self.shots = config["resolution"], device, config["shots"]
        self.index = dict(val=self.splits.val, test=self.splits.test)
        # a preset's caps on evaluation cost, recorded in its config: fixed seeded draws
        for part, limit in (("val", recipe.eval_limit), ("test", recipe.test_cap)):
            if limit and len(self.index[part]) > limit:
                self.index[part] = np.sort(np.random.default_rng(0).permutation(self.index[part])[:limit])
        self.split = {k: _to_device(self.prepared, v, self.resolution, device) for k, v in self.index.items()}
        if recipe.val_select == "clean":  # selection never scores a validation image with a twin in the pool
            from backbone_bench.data import twins

            found = twins.load_twins(self.prepared, self.splits)
            self.split["val"].select = ~np.isin(self.index["val"], twins.left_out(found, "val"))
        self._train: dict = {}

    def train(self, subset_seed: int) -> tuple[np.ndarray, Split]:
        if subset_seed not in self._train:
            index = self.splits.train(self.shots, subset_seed)
            self._train[subset_seed] = (index, _to_device(self.prepared, index, self.resolution, self.device))
        return self._train[subset_seed]


def _recipe(config: dict) -> Recipe:
    return Recipe(**{k: tuple(v) if isinstance(v, list) else v for k, v in config["recipe"].items()})


def _probe(config: dict, data: _Data, weights, recipe: Recipe, device, bf16: bool):
    watch = Stopwatch()
    train_index, train_split = data.train(config["subset_seed"])
    index = dict(data.index, train=train_index)
    split = dict(data.split, train=train_split)
    feats = {k: FEATURES.get(weights, data.prepared, index[k], split[k], recipe.eval_batch, device, bf16) for k in index}
    labels = {k: data.prepared.labels[v].astype(np.int64) for k, v in index.items()}
    return linear_probe(feats, labels, recipe, data.spec.num_classes, config["seed"], watch.seconds(),
                        data.split["val"].select)


def _member_factory(weights, data: _Data, train: Split, recipe: Recipe, device):
    def factory():
        model = create_model(weights, data.spec.num_classes, data.resolution)
        if weights.bn_folded:  # re-estimated on this member's own training images
            sample = train.images[: recipe.bn_reestimate_images]
            reestimate_folded_batchnorm(model.to(device), normalize(resize(sample, train.size), weights.mean, weights.std))
        return model
    return factory


def run_group(configs: list, device: torch.device, progress=None, compile_model: bool = False,
              channels_last: bool = False, bf16: bool = False) -> list:
    """Train and evaluate a group; returns, per config, (record fields, arrays) or the exception."""
    recipe = _recipe(configs[0])
    data = _Data(configs[0], recipe, device)
    outcomes, weights, members = {}, {}, []
    for n, config in enumerate(configs):
        try:
            weights[n] = resolve_weights(config["backbone"], pretrained=config["pretrained"])
        except WeightsUnavailableError as err:
            outcomes[n] = err
            continue
        if config["mode"] == "linear_probe":
            outcomes[n] = _probe(config, data, weights[n], recipe, device, bf16)
            continue
        _, train = data.train(config["subset_seed"])
        factory = _member_factory(weights[n], data, train, recipe, device)
        members += [Member(n, lr, config["seed"], factory, train, weights[n].mean, weights[n].std, data.spec.flip_ok)
                    for lr in config["recipe"]["lrs"]]
    if members:
        outcomes |= fit_runs(members, data.split["val"], data.split["test"], recipe, data.spec.num_classes, device,
                             recipe.batch_size, progress, compile_model, channels_last, bf16)
    return [_fields(configs[n], outcomes[n], weights.get(n), data) for n in range(len(configs))]


def _fields(config: dict, fit, weights, data: _Data):
    if isinstance(fit, Exception):
        return fit
    n_cls, splits = data.spec.num_classes, data.splits
    labels = {k: data.split[k].labels.cpu().numpy() for k in ("val", "test")}
    metrics = {k: classification_metrics(getattr(fit, f"probs_{k}"), labels[k], n_cls) for k in ("val", "test")}
    gradient = config["mode"] != "linear_probe"
    record = dict(metrics=metrics, chosen=fit.chosen, curves=fit.curves, weights=weights.row(),
                  n_train=len(data.train(config["subset_seed"])[0]), n_val=len(data.index["val"]),
                  n_val_selected=int(data.split["val"].select.sum()) if data.split["val"].select is not None
                  else len(data.index["val"]),
                  n_test=len(data.index["test"]), effective_shots=splits.effective_shots(config["shots"]),
                  micro_batch=fit.micro_batch if gradient else None,
                  subset_shared=bool(splits.shared_subset(config["shots"])), splits_digest=splits.digest(),
                  data_key=data.prepared.key, collapsed=collapsed(fit.probs_test.argmax(1)),
                  # clock "active": pauses (SIGSTOP) left out of every seconds field; older records lack it
                  timing=dict(train_seconds=round(fit.train_seconds, 3), clock="active",
                              train_images_per_second=round(fit.images_seen / max(fit.train_seconds, 1e-9), 1)))
    if gradient:  # execution details like `compiled`: not in the config, so not in the key
        record["fused"] = dict(group_members=fit.group_size, fusion=fit.fusion)
    small = np.uint8 if n_cls <= 255 else np.int16
    arrays = dict(test_index=data.index["test"].astype(np.int32), test_pred=fit.probs_test.argmax(1).astype(small),
                  test_label=labels["test"].astype(small), test_prob=fit.probs_test.astype(np.float16))
    return record, arrays


def record_base(config: dict, preset: str, env: dict, compile_model: bool = False, precision: str | None = None) -> dict:
    """What every record says about its run, whatever its outcome."""
    env = env | dict(compiled=compile_model) | (dict(precision=precision) if precision else {})
    base = dict(key=store.config_key(config), config=config, preset=preset, environment=env)
    if store.gradient(config):
        base["engine"] = store.ENGINE
    return base


def failure_record(base: dict, err: BaseException, tb: str | None = None) -> dict:
    status = next((s for kind, s in FAILURES if isinstance(err, kind)), "error")
    if status != "error":
        return base | dict(status=status, reason=str(err))
    return base | dict(status="error", reason=f"{type(err).__name__}: {err}", traceback=tb)


def run_configs(configs: list, preset: str, device: torch.device, env: dict, compile_model: bool = False,
                progress=None) -> list:
    """A group to [(record, arrays)], one per config: every failure becomes a record with its reason."""
    from backbone_bench.clock import active_since, clock

    start = clock().now()
    wanted = {recipe_precision(c) for c in configs}
    if len(wanted) > 1:  # a group computes in one precision: mixing them is a planning bug
        raise ValueError(f"a group mixes precisions {sorted(wanted)}; every run of an edition computes in one")
    computes_in = wanted.pop()
    exact_fp32(device, computes_in)
    speed = speed_options(configs[0]["backbone"], device, compile_model, computes_in)
    if not any(map(store.gradient, configs)):  # probes: one frozen network, nothing to stack or compile
        speed = dict(speed, compiled=compile_model, channels_last=False)
    try:
        outcomes = run_group(configs, device, progress, speed["compiled"], speed["channels_last"], speed["bf16"])
        tb = None
    except DeviceLost:
        raise  # nothing more runs on this device in this process: the sweep stops, records whole
    except Exception as err:  # the whole group failed (e.g. its data): each run records why
        outcomes, tb = [err] * len(configs), traceback.format_exc(limit=6)
    finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out = []
    for config, outcome in zip(configs, outcomes):
        base = record_base(config, preset, env, speed["compiled"], precision(speed))
        if isinstance(outcome, BaseException):
            record, arrays = failure_record(base, outcome, tb), None
        else:
            record, arrays = base | dict(status="ok") | outcome[0], outcome[1]
        if store.gradient(config):  # how the stack ran (speed only), beside the group size
            record["fused"] = record.get("fused", {}) | {k: v for k, v in speed.items() if k not in ("compiled", "bf16")}
        active, paused = active_since(start)  # a sweep paused by SIGSTOP does not count its pause
        record.setdefault("timing", {}).update(total_seconds=round(active, 3), paused_seconds=round(paused, 1))
        record["finished_at"] = finished
        out.append((record, arrays))
    return out
