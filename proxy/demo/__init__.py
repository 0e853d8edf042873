"""demo: see docs/design.md, "Packages"."""
