"""Allow `python -m dispatcher`."""

from dispatcher.cli import main

raise SystemExit(main())
