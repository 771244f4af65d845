"""Stage 2, the networks: which backbones a study runs (panels.py), their ImageNet weights and the
models built from them (backbones.py), and what each costs to run (cost.py).

May import: errors, paths, environment, data.
"""
