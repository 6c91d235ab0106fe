"""``python -m alerts`` → the ``alerts`` console script."""

from alerts.cli.parser import main

raise SystemExit(main())
