"""admin: see docs/design.md, "Packages"."""
