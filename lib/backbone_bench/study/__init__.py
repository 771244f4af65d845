"""Stage 4, the study as runs: presets (presets.py), the plan of what is still to run (plan.py),
one group to one record per run (run.py), executing here or on Dask workers (execute.py,
distributed.py), what a plan will cost (budget.py), the results store (store.py), bundles for
machines without the data (bundle.py), importing records made elsewhere (merge.py) and how far an
edition has come (progress.py).

May import: errors, paths, environment, data, models, engine.
"""
