"""Whole-process fixtures for the data plane's attack tests: the integration suite's upstreams, outrider."""

from __future__ import annotations

from tests.integration.conftest import outrider, upstreams
from tests.integration.test_framing import counting_upstream

__all__ = ["counting_upstream", "outrider", "upstreams"]
