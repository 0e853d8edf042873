"""control: see docs/design.md, "Packages"."""
