"""Delivery adapters behind one Protocol: the sandbox and Twilio."""
