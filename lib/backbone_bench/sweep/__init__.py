"""A sweep: plan the runs a preset asks for, train them in fused groups, record every outcome.

plan.py      what to run: the grid, parameter checks, what is already recorded, the groups
run.py       one group to one record per run (train.py trains, fused.py stacks the members)
execute.py   claims, the loop that writes records, here or on Dask workers (distributed.py)
"""
from backbone_bench.sweep.execute import execute
from backbone_bench.sweep.plan import GROUP_MEMBERS, Plan, build_plan, grid_cells, grid_keys, make_config, make_groups
from backbone_bench.sweep.run import FEATURES, run_configs

__all__ = ["FEATURES", "GROUP_MEMBERS", "Plan", "build_plan", "execute", "grid_cells", "grid_keys", "make_config",
           "make_groups", "run_configs"]
