"""The training engine: one recipe for every backbone, model selection on validation only.

finetune / scratch: AdamW + warm-up + cosine, label smoothing, device-side augmentation; each
learning rate of the grid trains a model, validation picks the lr and the checkpoint (early
stopping with patience), and only then is the test split evaluated, once. The trainings of a
group (runs of one architecture, dataset, shot level and step budget, at each of their learning
rates) run fused as one stacked model (fused.py); a solo run is a group of one, through the same
code. Each member keeps its own initialisation, training subset, batch order, augmentation,
optimizer, schedule, BatchNorm statistics, checkpoint and early-stopping point.
linear_probe: features of the frozen backbone are extracted once per (backbone, dataset) and
reused across shots and seeds; a logistic-regression head is fitted per regularisation
strength of the grid and validation picks one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from backbone_bench.clock import Stopwatch
from backbone_bench.engine.augment import normalize, random_resized_crop, resize
from backbone_bench.engine.fused import Stack
from backbone_bench.engine.metrics import PRIMARY, classification_metrics
from backbone_bench.engine.recipe import Recipe


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
    # validation: the images model selection scores (None: all); the others (twins of training
    # images) are still predicted and reported, never chosen on
    select: np.ndarray | None = None


def _selected(probs: np.ndarray, labels: np.ndarray, select: np.ndarray | None):
    return (probs, labels) if select is None else (probs[select], labels[select])


@dataclass
class Fit:
    probs_val: np.ndarray
    probs_test: np.ndarray
    chosen: dict           # the chosen lr (or C), step, and per-candidate validation scores
    curves: list           # per validation pass: lr, step, train_loss, val metrics
    train_seconds: float
    images_seen: int
    micro_batch: int = 0   # gradient modes: the micro-batch that fitted in memory
    group_size: int = 1    # gradient modes: members trained together (fusion is an execution detail)
    fusion: str = "solo"   # how they ran together (fused.Stack.how)


def autocast(device: torch.device, bf16: bool | None = None):
    """bf16 autocast where the recipe computes in bf16 (``bf16``), on a GPU or a CPU; fp32 otherwise."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bool(bf16))


def _score(probs, labels, num_classes):
    m = classification_metrics(probs, labels, num_classes)
    return (m[PRIMARY], -m["nll"]), m


@dataclass
class Member:
    """One training of a fused group: a run's config at one learning rate of its grid."""
    run: object            # the run it belongs to; a run is decided by all its learning rates
    lr: float
    seed: int              # initialisation, batch order and augmentation randomness
    factory: Callable      # () -> the initialised network (pretrained, BN re-estimated, or random)
    train: Split           # its own training subset
    mean: tuple
    std: tuple
    flip: bool


@dataclass
class Trained:
    """A member after training: its best checkpoint on validation, or why it has none."""
    member: Member
    model: torch.nn.Module | None = None   # holding the best checkpoint
    key: tuple | None = None               # (validation score, -nll) of that checkpoint
    val_probs: object = None               # its validation probabilities, the ones that chose it
    step: int = 0
    curves: list = field(default_factory=list)
    failure: tuple | None = None           # ("diverged" | "oom", reason)
    images_seen: int = 0
    micro_batch: int = 0
    group_size: int = 1
    fusion: str = "solo"
    seconds: float = 0.0
    full_best: tuple | None = None         # (key, step) selection on every validation image would have kept


class OutOfMemory(RuntimeError):
    """Even one member at micro-batch 1 does not fit."""


class DeviceLost(RuntimeError):
    """A CUDA error that poisons the process (an illegal memory access, a device-side assert):
    nothing more can run on this device here, so the sweep stops instead of recording failures."""


#: What CUDA says when its context is lost for the rest of the process.
STICKY = ("illegal memory access", "device-side assert", "unspecified launch failure", "misaligned address")


def _too_large(err: BaseException) -> bool:
    """Out of memory, or a fused layer past the kernels cuDNN has: a smaller stack is the answer."""
    return isinstance(err, torch.OutOfMemoryError) or any(limit in str(err) for limit in CUDNN_LIMITS)


def _sticky(err: BaseException, device) -> None:
    if torch.device(device).type == "cuda" and any(s in str(err) for s in STICKY):
        raise DeviceLost(f"the GPU's context is lost ({type(err).__name__}: {err}); restart the sweep") from err


def fit_runs(members: list, val: Split, test: Split, recipe: Recipe, num_classes: int, device, micro_batch: int,
             progress=None, compile_model: bool = False, channels_last: bool = False, bf16: bool = False) -> dict:
    """Train the members as one fused group, then per run: validation picks the learning rate and
    checkpoint, and the chosen checkpoint meets the test split once. Returns {run: Fit | exception}."""
    trained = train_group(members, val, recipe, num_classes, device, micro_batch, progress, compile_model, channels_last,
                          bf16)
    by_run: dict = {}
    for t in trained:
        by_run.setdefault(t.member.run, []).append(t)
    out, chosen = {}, {}
    for run, ts in by_run.items():
        failed = next((t for t in ts if t.failure), None)
        if failed is not None:
            out[run] = (Diverged if failed.failure[0] == "diverged" else OutOfMemory)(failed.failure[1])
            continue
        chosen[run] = max(ts, key=lambda t: t.key)   # max keeps the first of equal keys: the grid's order
    if chosen:
        runs = list(chosen)
        models = [chosen[r].model for r in runs]
        norms = [(chosen[r].member.mean, chosen[r].member.std) for r in runs]
        try:  # the one test evaluation, split down to one model at a time if the stack is too large
            test_probs = predict_group(models, test, norms, recipe.eval_batch, device, bf16)
        except DeviceLost:
            raise
        except Exception as err:  # any other failure of a stack: each model alone, so no trained run is lost
            _sticky(err, device)
            if len(models) == 1:
                raise
            _warn_solo("its test evaluation", err)
            test_probs = [p for m, n in zip(models, norms) for p in predict_group([m], test, [n], recipe.eval_batch,
                                                                                 device, bf16)]
        for i, run in enumerate(runs):
            ts, best = by_run[run], chosen[run]
            candidates = {t.member.lr: dict(val_score=t.key[0], val_nll=-t.key[1], step=t.step) for t in ts}
            picked = dict(lr=best.member.lr, step=best.step, candidates=candidates)
            if val.select is not None:  # what selecting on the whole validation set would have picked
                full = max((t for t in ts if t.full_best is not None), key=lambda t: t.full_best[0], default=None)
                if full is not None:
                    picked["on_all_val"] = dict(lr=full.member.lr, step=full.full_best[1])
            out[run] = Fit(best.val_probs, test_probs[i], picked,
                           [c for t in ts for c in t.curves], best.seconds, sum(t.images_seen for t in ts),
                           min(t.micro_batch for t in ts), max(t.group_size for t in ts),
                           max(ts, key=lambda t: t.group_size).fusion)
    return out


def train_group(members: list, val: Split, recipe: Recipe, num_classes: int, device, micro_batch: int,
                progress=None, compile_model: bool = False, channels_last: bool = False, bf16: bool = False) -> list:
    """Train members together; a group too large for the device (out of memory, or a fused layer
    cuDNN has no kernel for) is split in halves, and a lone member out of memory halves its
    micro-batch (same effective batch, accumulated) down to 1 before it is recorded ``oom``. A
    group that fails in any other way is trained again member by member (solo), once; a lone
    member's failure is raised (its run is recorded ``error``), a lost GPU context stops the sweep.
    ``compile_model``, ``channels_last`` and ``bf16`` change speed only (speed.py)."""
    speed = (compile_model, channels_last, bf16)
    try:
        return _train_together(members, val, recipe, num_classes, device, micro_batch, progress, *speed)
    except DeviceLost:
        raise
    except Exception as err:
        _sticky(err, device)
        oom = isinstance(err, torch.OutOfMemoryError)
        if not _too_large(err):
            if len(members) == 1:
                raise
            _warn_solo(f"its {len(members)} trainings", err)
            return [t for m in members for t in train_group([m], val, recipe, num_classes, device, micro_batch,
                                                            progress, *speed)]
        if len(members) == 1 and not oom:  # a lone member past cuDNN: nothing smaller to try
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if len(members) > 1:
            half = len(members) // 2
            return (train_group(members[:half], val, recipe, num_classes, device, micro_batch, progress, *speed)
                    + train_group(members[half:], val, recipe, num_classes, device, micro_batch, progress, *speed))
        if micro_batch == 1:
            return [Trained(members[0], failure=("oom", f"out of memory even at micro-batch 1: {err}"))]
        return train_group(members, val, recipe, num_classes, device, micro_batch // 2, progress, *speed)


def _warn_solo(what: str, err: BaseException) -> None:
    import warnings

    warnings.warn(f"a fused group failed ({type(err).__name__}: {str(err)[:200]}); running {what} one model at a "
                  "time instead", stacklevel=3)


#: What cuDNN says when a layer is past the kernels it has (on an H100, tf_efficientnet_lite2's
#: 12-member stack: the first of these); a smaller group is the answer, as for out of memory.
CUDNN_LIMITS = ("unable to find an engine", "CUDNN_STATUS_NOT_SUPPORTED")


def _train_together(members, val, recipe, num_classes, device, micro_batch, progress, compile_model,
                    channels_last, bf16) -> list:
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler

    watch = Stopwatch()
    real = torch.get_default_dtype()  # bf16 logits are scored in float32 (float64 in the equivalence test)
    val_labels = val.labels.cpu().numpy()
    out = [Trained(m, micro_batch=micro_batch, group_size=len(members)) for m in members]
    models, optimizers, schedulers, batches = [], [], [], []
    for m in members:
        torch.manual_seed(m.seed)  # the new head's (or the scratch network's) initialisation
        model = m.factory().to(device)
        optimizer = create_optimizer_v2(model, "adamw", lr=m.lr, weight_decay=recipe.weight_decay)
        schedulers.append(CosineLRScheduler(optimizer, t_initial=recipe.steps, warmup_t=int(recipe.warmup_frac * recipe.steps),
                                            warmup_lr_init=m.lr * 0.01, lr_min=0.0, t_in_epochs=False))
        models.append(model)
        optimizers.append(optimizer)
        batches.append(_Batches(m.train, recipe.batch_size, torch.Generator(device=device).manual_seed(m.seed)))
    weights = [_class_weight(m.train, recipe, num_classes, device) for m in members]
    active = list(range(len(members)))           # members still training, in stack order
    stack = Stack(models, compile_model, channels_last)
    for t in out:
        t.fusion = stack.how
    best = {i: None for i in active}
    waiting = {i: 0 for i in active}              # validation passes without improvement
    losses = {i: [] for i in active}
    for step in range(recipe.steps):
        for i in active:
            optimizers[i].zero_grad(set_to_none=True)
        stack.zero_grad()
        index = {i: next(batches[i]) for i in active}
        total = torch.zeros(len(active), device=device)
        for lo in range(0, recipe.batch_size, micro_batch):
            parts = [index[i][lo:lo + micro_batch] for i in active]
            x = torch.stack([normalize(random_resized_crop(members[i].train.images[part], members[i].train.size,
                                                           recipe.crop_scale, flip=members[i].flip,
                                                           generator=batches[i].generator),
                                       members[i].mean, members[i].std) for i, part in zip(active, parts)])
            with autocast(device, bf16):
                logits = stack.train_forward(x)
            loss = torch.stack([F.cross_entropy(logits[j].to(real), members[i].train.labels[part], weight=weights[i],
                                                label_smoothing=recipe.label_smoothing)
                                for j, (i, part) in enumerate(zip(active, parts))])
            share = len(parts[0]) / recipe.batch_size
            (loss * share).sum().backward()        # members share no weights: each gets its own gradient
            total += loss.detach() * share
        stack.hand_gradients()
        total = total.cpu().numpy()                # one synchronisation per step
        leaving = set()
        for j, i in enumerate(active):
            if not np.isfinite(total[j]):          # before its step: the others train on unaffected
                reason = f"loss became {total[j]} at step {step + 1} (lr {members[i].lr})"
                for k in active:
                    if members[k].run == members[i].run:
                        out[k].failure = ("diverged", reason)
                        leaving.add(k)
                continue
            losses[i].append(float(total[j]))
        for i in active:
            if i not in leaving:
                optimizers[i].step()
                schedulers[i].step_update(step + 1)
                out[i].images_seen += recipe.batch_size
        if progress is not None:
            progress(len(active))
        if (step + 1) % recipe.eval_every == 0 or step + 1 == recipe.steps:
            probs = _validate(stack, [models[i] for i in active], val, [(members[i].mean, members[i].std) for i in active],
                              recipe.eval_batch, device, bf16)
            for j, i in enumerate(active):
                if i in leaving:
                    continue
                key, metrics = _score(probs[j], val_labels, num_classes)
                curve = dict(lr=members[i].lr, step=step + 1, train_loss=float(np.mean(losses[i])),
                             **{f"val_{k}": v for k, v in metrics.items()})
                if val.select is not None:  # selection scores the clean subset; the full one stays in the curve
                    full_key = key
                    key, clean = _score(*_selected(probs[j], val_labels, val.select), num_classes)
                    curve |= {f"val_clean_{k}": v for k, v in clean.items()}
                    if out[i].full_best is None or full_key > out[i].full_best[0]:
                        out[i].full_best = (full_key, step + 1)
                out[i].curves.append(curve)
                losses[i] = []
                if best[i] is None or key > best[i][0]:
                    best[i], waiting[i] = (key, step + 1, stack.state(j), probs[j]), 0
                else:
                    waiting[i] += 1
                    if waiting[i] >= recipe.patience:   # early stop: its checkpoint is final
                        leaving.add(i)
        if leaving:
            keep = [j for j, i in enumerate(active) if i not in leaving]
            active = [active[j] for j in keep]
            if not active:
                break
            stack = stack.keep(keep)
    seconds = watch.seconds()
    for i, t in enumerate(out):
        t.seconds = seconds
        if t.failure is None and best[i] is not None:
            t.key, t.step, t.val_probs = best[i][0], best[i][1], best[i][3]
            models[i].load_state_dict(best[i][2])
            t.model = models[i]
    return out


class _Batches:
    """Epochs of shuffled indices of one member's subset, a batch at a time; repeats only when
    the subset is smaller than a batch."""

    def __init__(self, split: Split, batch: int, generator: torch.Generator):
        self.n, self.batch, self.generator = len(split.labels), batch, generator
        self.queue = torch.empty(0, dtype=torch.long, device=split.labels.device)

    def __next__(self):
        while len(self.queue) < self.batch:
            self.queue = torch.cat([self.queue, torch.randperm(self.n, device=self.queue.device, generator=self.generator)])
        index, self.queue = self.queue[:self.batch], self.queue[self.batch:]
        return index


def _class_weight(train: Split, recipe: Recipe, num_classes: int, device):
    """Class weights for every logit (classes absent from the subset weigh 0), or None."""
    if recipe.class_weight != "balanced":
        return None
    return torch.as_tensor(class_weights(train.labels.cpu().numpy(), num_classes), dtype=torch.float32, device=device)


@torch.no_grad()
def _predict(stack: Stack, split: Split, norms: list, batch: int, device, bf16: bool = False) -> list:
    """Softmax probabilities of every member of the stack on one split (members may normalise differently)."""
    shared = len(set(norms)) == 1
    # ``batch`` images per member-forward, as a solo evaluation: a stack of 12 at 512 each made
    # tensors past cuDNN's 2^31 elements (CUDNN_STATUS_NOT_SUPPORTED on the H100)
    batch = max(1, batch // len(stack))
    out = []
    for start in range(0, len(split.labels), batch):
        images = resize(split.images[start:start + batch], split.size)
        if shared:
            x = normalize(images, *norms[0])
        else:
            x = torch.stack([normalize(images, mean, std) for mean, std in norms])
        with autocast(device, bf16):
            logits = stack.eval_forward(x, shared)
        out.append(torch.softmax(logits.to(torch.get_default_dtype()), -1))
    return list(torch.cat(out, 1).cpu().numpy())  # one host transfer per pass, not one per batch


def _validate(stack: Stack, models: list, split: Split, norms: list, batch: int, device, bf16: bool) -> list:
    """A validation pass of a training stack; one too large for the device is evaluated member by
    member (each member's tensors are views of the stack's, so they hold its current weights)."""
    try:
        return _predict(stack, split, norms, batch, device, bf16)
    except RuntimeError as err:
        _sticky(err, device)
        if not _too_large(err) or len(models) == 1:
            raise
        stack.write_back()
        return [p for m, n in zip(models, norms) for p in _predict(Stack([m], relayout=False), split, [n], batch,
                                                                   device, bf16)]


def predict_group(models: list, split: Split, norms: list, batch: int, device, bf16: bool = False) -> list:
    """Probabilities of each model on one split, the models evaluated as one stack; a stack too large
    for the device is evaluated in halves, a lone model with smaller batches (the same numbers)."""
    try:
        return _predict(Stack(models), split, norms, batch, device, bf16)
    except RuntimeError as err:
        _sticky(err, device)
        if not _too_large(err) or (len(models) == 1 and batch // len(models) <= 1):
            raise
        if torch.device(device).type == "cuda":
            torch.cuda.empty_cache()
        if len(models) == 1:
            return predict_group(models, split, norms, batch // 2, device, bf16)
        half = len(models) // 2
        return (predict_group(models[:half], split, norms[:half], batch, device, bf16)
                + predict_group(models[half:], split, norms[half:], batch, device, bf16))


@torch.no_grad()
def extract_features(model, split: Split, mean, std, batch, device, bf16: bool = False) -> np.ndarray:
    model.eval()
    out = []
    for start in range(0, len(split.images), batch):
        x = normalize(resize(split.images[start:start + batch], split.size), mean, std)
        with autocast(device, bf16):
            out.append(model(x).float())
    return torch.cat(out).cpu().numpy()


def linear_probe(feats: dict, labels: dict, recipe: Recipe, num_classes: int, seed: int, extract_seconds: float,
                 select: np.ndarray | None = None) -> Fit:
    """A logistic-regression head on standardised frozen features, one per C of the grid;
    validation picks C. Where it picks an edge of the grid, the grid grows a decade at a time past
    that edge (up to ``recipe.probe_extend`` decades) until validation's choice is interior; the
    record says how far it grew and whether the choice still sits on an edge.

    ``feats`` and ``labels`` map "train", "val", "test" to arrays (features come from the
    frozen backbone, extracted once; see features.FeatureCache); ``select``: the validation images
    C is chosen on (None: all; the clean subset where the recipe asks for it)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    watch = Stopwatch()
    scaler = StandardScaler().fit(feats["train"])  # fitted on the training subset only
    feats = {k: scaler.transform(v) for k, v in feats.items()}
    balanced = "balanced" if recipe.class_weight == "balanced" else None
    heads, candidates = {}, {}

    full_keys = {}

    def fit(c):
        head = LogisticRegression(C=c, max_iter=2000, random_state=seed, class_weight=balanced).fit(
            feats["train"], labels["train"])
        probs = _full_probs(head, feats["val"], num_classes)
        key, _ = _score(*_selected(probs, labels["val"], select), num_classes)  # clean validation, if asked
        heads[c], candidates[c] = (key, head), dict(val_score=key[0], val_nll=-key[1])
        if select is not None:
            full_keys[c] = _score(probs, labels["val"], num_classes)[0]

    for c in recipe.probe_cs:
        fit(c)
    grown = 0
    while True:
        # max keeps the first of equal keys: the grid's order, then the extensions'
        c = max(heads, key=lambda c: heads[c][0])
        low, high = min(heads), max(heads)
        if c not in (low, high) or grown >= recipe.probe_extend or len(heads) < 2:
            break
        fit(_decade(c, -1 if c == low else 1))
        grown += 1
    key, head = heads[c]
    chosen = dict(C=c, candidates=candidates)
    if recipe.probe_extend:
        chosen |= dict(grid_extended=grown, at_edge=c in (min(heads), max(heads)))
    if select is not None:  # what the whole validation set would have chosen among the Cs tried
        chosen["on_all_val"] = dict(C=max(full_keys, key=full_keys.get))
    return Fit(_full_probs(head, feats["val"], num_classes), _full_probs(head, feats["test"], num_classes),
               chosen, [], extract_seconds + watch.seconds(), len(labels["train"]))


def _decade(c: float, direction: int) -> float:
    """C a decade further out, rounded so that grids written as 1e-4 and grown ones compare equal."""
    return float(f"{c * 10.0 ** direction:.6g}")


def _full_probs(head, feats, num_classes) -> np.ndarray:
    """Probabilities over all classes, also when a class was absent from the training subset."""
    probs = np.zeros((len(feats), num_classes))
    probs[:, head.classes_] = head.predict_proba(feats)
    return probs
