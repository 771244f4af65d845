"""Stage 5, what the records say: the two-level bootstrap behind every interval (uncertainty.py),
rankings (ranking.py) and the earlier studies' claims checked (claims.py).

May import: errors, paths, environment, data, models, engine, study.
"""
