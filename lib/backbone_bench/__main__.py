"""`python -m backbone_bench`: the same command line as `backbone-bench`."""
# Guarded: the book's page workers are spawned processes, and spawn re-imports the main module.
if __name__ == "__main__":
    from backbone_bench.cli.main import main

    raise SystemExit(main())
