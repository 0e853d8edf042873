"""runtime: see docs/design.md, "Packages"."""
