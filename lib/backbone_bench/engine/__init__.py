"""Stage 3, training one run or a fused group: the recipe (recipe.py), batched augmentation
(augment.py), the training loop with model selection on validation (train.py), horizontal fusion
(fused.py), metrics (metrics.py), the measured speed path per device (speed.py) and cached probe
features (features.py). It knows nothing of presets, sweeps or records.

May import: errors, paths, environment, data, models.
"""
