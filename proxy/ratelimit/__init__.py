"""ratelimit: see docs/design.md, "Packages"."""
