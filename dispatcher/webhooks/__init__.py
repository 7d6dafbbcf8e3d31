"""The HTTP server: health, metrics and the provider's callbacks."""
