"""Contact strategy: stages, time windows, slot rotation and the planner."""
