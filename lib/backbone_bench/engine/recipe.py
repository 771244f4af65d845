"""The training modes and the recipe: every hyperparameter a run's config stores (and its key hashes).

Kept apart from train.py, which imports torch: presets and the command line's checks read them
without it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

MODES = ("finetune", "linear_probe", "scratch")
#: What a recipe may compute in. Part of the recipe, not a speed option: bf16 features changed 1.7 to
#: 11.8 % of a probe's test predictions, the size of the gaps the book ranks on, so every run of an
#: edition, every backbone and every host computes in its preset's one precision (on a CPU, fp32).
PRECISIONS = ("fp32", "bf16-autocast")


@dataclass(frozen=True)
class Recipe:
    """Every hyperparameter of a run. Presets set them; every record stores them."""
    steps: int = 500                      # optimizer steps per learning rate (the budget per shot level)
    batch_size: int = 64                  # images per optimizer step
    lrs: tuple = (1e-3, 3e-4)             # AdamW learning rates tried; validation picks one
    weight_decay: float = 0.05            # AdamW, not applied to norms and biases (timm's default split)
    label_smoothing: float = 0.1         # cross-entropy target smoothing (gradient modes)
    warmup_frac: float = 0.1              # share of steps with linear warm-up, then cosine to zero
    eval_every: int = 50                  # steps between validation passes (selection, early stopping)
    patience: int = 6                     # validation passes without improvement before stopping
    crop_scale: tuple = (0.35, 1.0)       # random-resized-crop area range
    probe_cs: tuple = (0.01, 0.1, 1.0, 10.0)  # linear probe: inverse L2 strengths tried on validation
    bn_reestimate_images: int = 256       # training images used to re-estimate folded BatchNorm
    eval_batch: int = 256                 # images per forward pass when validating and testing
    eval_limit: int = 0                   # >0: validate and test on this many images (seeded draw); 0 = all
    class_weight: str = "none"            # "balanced": weight classes by inverse training frequency
    test_limit: int | None = None         # test's own cap (0 = all); None: eval_limit caps test too
    probe_extend: int = 0                 # decades the probe's C grid may grow past an edge validation picked
    precision: str = "fp32"               # the arithmetic of every forward and backward pass (PRECISIONS)
    val_select: str = "all"               # "clean": selection scores validation without its twins in the pool

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        if self.val_select not in ("all", "clean"):
            raise ValueError(f"val_select {self.val_select!r}: choose all or clean")

    @property
    def test_cap(self) -> int:
        return self.eval_limit if self.test_limit is None else self.test_limit

    def as_dict(self) -> dict:
        """The recipe as stored in a run's config (and hashed into its key). An option added after
        the first records were made is left out while it has its neutral value, so the runs it does
        not change keep their keys; set, it enters the key."""
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        for name, neutral in NEUTRAL.items():
            if d[name] == neutral:
                del d[name]
        return d


#: Options added after the first records, left out of a config (and its key) at these values.
NEUTRAL = dict(class_weight="none", test_limit=None, probe_extend=0, precision="fp32", val_select="all")


def recipe_precision(config: dict) -> str:
    """The precision a run's config asks for (fp32 where its recipe leaves it out: NEUTRAL)."""
    return config.get("recipe", {}).get("precision", NEUTRAL["precision"])
