"""ModelReady and ModelMetadata calls ask for the stable variant's own model name and version."""

from __future__ import annotations

import pytest

from oipgrpc import messages as m
from proxy.grpcfront.forward import renamed


@pytest.mark.parametrize(
    ("model", "version", "want"),
    [("clf-a", None, ("clf-a", "v1")), (None, "3", ("digits", "3")), ("clf-a", "2", ("clf-a", "2"))],
)
@pytest.mark.parametrize("method", ["ModelReady", "ModelMetadata"])
def test_a_model_call_is_renamed(
    method: str, model: str | None, version: str | None, want: tuple[str, str]
) -> None:
    request = m.METHODS[method].request(name="digits", version="v1").SerializeToString()
    out = m.METHODS[method].request.FromString(renamed(request, model, version, method))
    assert (out.name, out.version) == want
