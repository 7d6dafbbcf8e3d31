"""Configuration: TOML files validated into immutable settings, and hot reload."""
