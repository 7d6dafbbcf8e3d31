"""The work queue for people: what the engine cannot decide alone, and what a person did."""
