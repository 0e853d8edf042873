"""Mirroring to shadow versions and comparing their answers with the primary's (see DESIGN.md §2)."""
