"""`python -m backdrop.cli`: the same as the `backdrop` command."""

from . import main

raise SystemExit(main())
