"""Load scenarios (locust) and the side-by-side benchmark: direct vs nginx vs outrider."""
