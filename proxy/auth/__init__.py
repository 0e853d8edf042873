"""auth: see docs/design.md, "Packages"."""
