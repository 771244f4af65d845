"""The training engine: one recipe for every backbone, model selection on validation only.

finetune / scratch: AdamW + warm-up + cosine, label smoothing, device-side augmentation; each
learning rate of the grid trains a model, validation picks the lr and the checkpoint (early
stopping with patience), and only then is the test split evaluated, once.
linear_probe: features of the frozen backbone are extracted once per (backbone, dataset) and
reused across shots and seeds; a logistic-regression head is fitted per regularisation
strength of the grid and validation picks one.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from backbone_bench.augment import normalize, random_resized_crop, resize
from backbone_bench.metrics import PRIMARY, classification_metrics

MODES = ("finetune", "linear_probe", "scratch")


@dataclass(frozen=True)
class Recipe:
    """Every hyperparameter of a run. Presets set them; every record stores them."""
    steps: int = 500                      # optimizer steps per learning rate (the budget per shot level)
    batch_size: int = 64                  # images per optimizer step
    lrs: tuple = (1e-3, 3e-4)             # AdamW learning rates tried; validation picks one
    weight_decay: float = 0.05            # AdamW, not applied to norms and biases (timm's default split)
    label_smoothing: float = 0.1
    warmup_frac: float = 0.1              # share of steps with linear warm-up, then cosine to zero
    eval_every: int = 50                  # steps between validation passes (selection, early stopping)
    patience: int = 6                     # validation passes without improvement before stopping
    crop_scale: tuple = (0.35, 1.0)       # random-resized-crop area range
    probe_cs: tuple = (0.01, 0.1, 1.0, 10.0)  # linear probe: inverse L2 strengths tried on validation
    bn_reestimate_images: int = 256       # training images used to re-estimate folded BatchNorm
    eval_batch: int = 256
    eval_limit: int = 0                   # >0: validate and test on this many images (seeded draw); 0 = all
    class_weight: str = "none"            # "balanced": weight classes by inverse training frequency

    def as_dict(self) -> dict:
        """The recipe as stored in a run's config (and hashed into its key). An option added after
        the first records were made is left out while it has its neutral value, so the runs it does
        not change keep their keys; set, it enters the key."""
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        if d["class_weight"] == "none":
            del d["class_weight"]
        return d


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """n / (k * n_c) per class present (scikit-learn's "balanced"); absent classes weigh 0."""
    counts = np.bincount(labels, minlength=num_classes).astype(float)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


class Diverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class Split:
    """One split on the training device: uint8 images at the run's resolution and labels."""
    images: torch.Tensor   # (N, C, S, S) uint8, S = min(storage size, size)
    labels: torch.Tensor   # (N,) int64
    size: int              # the network's input resolution; batches are resized to it


@dataclass
class Fit:
    probs_val: np.ndarray
    probs_test: np.ndarray
    chosen: dict           # the chosen lr (or C), step, and per-candidate validation scores
    curves: list           # per validation pass: lr, step, train_loss, val metrics
    train_seconds: float
    images_seen: int


def autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


@torch.no_grad()
def predict(model, split: Split, mean, std, batch: int, device) -> np.ndarray:
    model.eval()
    out = []
    for start in range(0, len(split.labels), batch):
        x = normalize(resize(split.images[start:start + batch], split.size), mean, std)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device):
            logits = model(x)
        out.append(torch.softmax(logits.float(), 1).cpu())
    return torch.cat(out).numpy()


def _score(probs, labels, num_classes):
    m = classification_metrics(probs, labels, num_classes)
    return (m[PRIMARY], -m["nll"]), m


def train_gradient(model_factory, train: Split, val: Split, test: Split, recipe: Recipe, lrs, flip: bool,
                   mean, std, num_classes: int, device, seed: int, micro_batch: int, progress=None,
                   compile_model: bool = False) -> Fit:
    """Fine-tune (or train from scratch) once per learning rate; validation picks lr and checkpoint."""
    val_labels = val.labels.cpu().numpy()
    best_overall, curves, candidates, seen = None, [], {}, 0
    start = time.perf_counter()
    for lr in lrs:
        torch.manual_seed(seed)
        model = model_factory().to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        if compile_model:  # speed only: the same function, so not part of the run's config
            model = torch.compile(model)
        best, passes_without_gain, step_loss = None, 0, []
        for step, loss in _steps(model, train, recipe, lr, flip, mean, std, device, seed, micro_batch):
            seen += recipe.batch_size
            step_loss.append(loss)
            if progress is not None:
                progress(1)
            if (step + 1) % recipe.eval_every and step + 1 != recipe.steps:
                continue
            probs = predict(model, val, mean, std, recipe.eval_batch, device)
            key, metrics = _score(probs, val_labels, num_classes)
            curves.append(dict(lr=lr, step=step + 1, train_loss=float(np.mean(step_loss)),
                               **{f"val_{k}": v for k, v in metrics.items()}))
            step_loss = []
            if best is None or key > best[0]:
                best = (key, step + 1, copy.deepcopy(model.state_dict()))
                passes_without_gain = 0
            else:
                passes_without_gain += 1
                if passes_without_gain >= recipe.patience:
                    break
        candidates[lr] = dict(val_score=best[0][0], val_nll=-best[0][1], step=best[1])
        if best_overall is None or best[0] > best_overall[0]:
            best_overall = (best[0], lr, best[1], best[2], model)
        else:
            del model
    _, lr, step, state, model = best_overall
    model.load_state_dict(state)
    train_seconds = time.perf_counter() - start
    probs_val = predict(model, val, mean, std, recipe.eval_batch, device)
    probs_test = predict(model, test, mean, std, recipe.eval_batch, device)  # the one test evaluation
    return Fit(probs_val, probs_test, dict(lr=lr, step=step, candidates=candidates), curves, train_seconds, seen)


def _steps(model, train: Split, recipe: Recipe, lr, flip, mean, std, device, seed, micro_batch):
    """Yield (step, loss) for each optimizer step; raises Diverged on a non-finite loss."""
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler

    optimizer = create_optimizer_v2(model, "adamw", lr=lr, weight_decay=recipe.weight_decay)
    warmup = int(recipe.warmup_frac * recipe.steps)
    scheduler = CosineLRScheduler(optimizer, t_initial=recipe.steps, warmup_t=warmup, warmup_lr_init=lr * 0.01,
                                  lr_min=0.0, t_in_epochs=False)
    generator = torch.Generator(device=device).manual_seed(seed)
    n, batch = len(train.labels), recipe.batch_size
    weight = None
    if recipe.class_weight == "balanced":
        weight = torch.as_tensor(class_weights(train.labels.cpu().numpy(), int(train.labels.max()) + 1),
                                 dtype=torch.float32, device=device)
    queue = torch.empty(0, dtype=torch.long, device=device)
    model.train()
    for step in range(recipe.steps):
        while len(queue) < batch:  # epochs of shuffled indices; repeats only when n < batch
            queue = torch.cat([queue, torch.randperm(n, device=device, generator=generator)])
        index, queue = queue[:batch], queue[batch:]
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for part in index.split(micro_batch):
            x = random_resized_crop(train.images[part], train.size, recipe.crop_scale, flip=flip, generator=generator)
            x = normalize(x, mean, std)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), train.labels[part], weight=_pad(weight, logits.shape[1]),
                                   label_smoothing=recipe.label_smoothing)
            (loss * (len(part) / batch)).backward()
            total += loss.item() * len(part) / batch
        if not np.isfinite(total):
            raise Diverged(f"loss became {total} at step {step + 1} (lr {lr})")
        optimizer.step()
        scheduler.step_update(step + 1)
        yield step, total


def _pad(weight, num_classes):
    """Class weights for every logit (classes above the subset's largest label weigh 0)."""
    if weight is None or len(weight) == num_classes:
        return weight
    return torch.cat([weight, weight.new_zeros(num_classes - len(weight))])


@torch.no_grad()
def extract_features(model, split: Split, mean, std, batch, device) -> np.ndarray:
    model.eval()
    out = []
    for start in range(0, len(split.images), batch):
        x = normalize(resize(split.images[start:start + batch], split.size), mean, std)
        with autocast(device):
            out.append(model(x).float().cpu())
    return torch.cat(out).numpy()


def linear_probe(feats: dict, labels: dict, recipe: Recipe, num_classes: int, seed: int, extract_seconds: float) -> Fit:
    """A logistic-regression head on frozen features, one per C of the grid; validation picks C.

    ``feats`` and ``labels`` map "train", "val", "test" to arrays (features come from the
    frozen backbone, extracted once; see sweep.FeatureCache)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    start = time.perf_counter()
    scaler = StandardScaler().fit(feats["train"])
    feats = {k: scaler.transform(v) for k, v in feats.items()}
    best, candidates = None, {}
    for c in recipe.probe_cs:
        balanced = "balanced" if recipe.class_weight == "balanced" else None
        head = LogisticRegression(C=c, max_iter=2000, random_state=seed, class_weight=balanced).fit(
            feats["train"], labels["train"])
        probs = _full_probs(head, feats["val"], num_classes)
        key, _ = _score(probs, labels["val"], num_classes)
        candidates[c] = dict(val_score=key[0], val_nll=-key[1])
        if best is None or key > best[0]:
            best = (key, c, head)
    _, c, head = best
    return Fit(_full_probs(head, feats["val"], num_classes), _full_probs(head, feats["test"], num_classes),
               dict(C=c, candidates=candidates), [], extract_seconds + time.perf_counter() - start,
               len(labels["train"]))


def _full_probs(head, feats, num_classes) -> np.ndarray:
    """Probabilities over all classes, also when a class was absent from the training subset."""
    probs = np.zeros((len(feats), num_classes))
    probs[:, head.classes_] = head.predict_proba(feats)
    return probs
