"""`python -m dbps` runs the command line."""

from dbps.cli import main

raise SystemExit(main())
