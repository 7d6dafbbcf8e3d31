"""overdue-dispatcher: compliance-first contact engine for overdue accounts."""

__version__ = "0.1.0"
