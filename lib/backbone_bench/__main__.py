from backbone_bench.cli import main

raise SystemExit(main())
