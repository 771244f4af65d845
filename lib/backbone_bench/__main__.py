"""`python -m backbone_bench`: the same command line as `backbone-bench`."""
from backbone_bench.cli.main import main

raise SystemExit(main())
