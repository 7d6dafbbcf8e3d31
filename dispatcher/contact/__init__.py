"""The contact engine: deciding, sending, explaining, reconciling and simulating attempts."""
