"""Allow `python -m dispatcher`."""

from dispatcher.entry import main

raise SystemExit(main())
