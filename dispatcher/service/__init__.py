"""The daemon: wiring, periodic jobs, metrics, logging and its supervisor."""
