"""The tamper-evident audit log: hash chain, verification, signed heads, retention, outbox."""
