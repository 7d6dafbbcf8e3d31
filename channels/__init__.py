"""Delivery adapters behind one Protocol (sandbox, Twilio); filled by the channel issues."""
