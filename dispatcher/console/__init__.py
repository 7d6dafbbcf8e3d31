"""The operators' web console, served under /console by the daemon's HTTP server."""
