"""Mirroring to shadow versions and comparing their answers with the primary's (see docs/design.md)."""
