"""``python -m rerank_core``: the command line (see :mod:`rerank_core.cli`)."""

from rerank_core.cli import main

raise SystemExit(main())
