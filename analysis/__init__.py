"""Sequential statistics, the decision engine and promotion reports (see STATS.md)."""
