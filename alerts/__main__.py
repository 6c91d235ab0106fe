"""``python -m alerts`` → the ``alerts`` console script."""

from alerts.cli import main

raise SystemExit(main())
