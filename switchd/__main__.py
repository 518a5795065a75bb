"""`python -m switchd` is `switchd`."""

from switchd.cli import main

raise SystemExit(main())
