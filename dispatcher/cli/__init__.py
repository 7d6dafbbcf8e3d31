"""The `dispatcher` command line."""
