"""Allow `python -m dispatcher`."""

from dispatcher.cli.entry import main

raise SystemExit(main())
