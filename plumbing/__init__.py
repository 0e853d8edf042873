"""Mechanics that know nothing of outrider, for every package: the work queue, the HTTP client."""
