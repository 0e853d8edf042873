"""telemetry: see docs/design.md, "Packages"."""
