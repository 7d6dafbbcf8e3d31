"""The compliance report: audit records read, rules re-checked, one HTML page."""
