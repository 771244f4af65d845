"""Stage 8, the command line: ``backbone-bench`` (main.py) and the study's subcommands (commands.py).
Subcommands are thin; the work lives in the stages below.

May import every stage.
"""
