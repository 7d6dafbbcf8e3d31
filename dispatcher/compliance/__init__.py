"""The rules: the compliance gate, quiet hours, limits, holidays, consent and revocation words."""
