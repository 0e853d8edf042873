"""Rewriting the model name and version in a request path for a variant whose server knows the model under
another name or version (`variants[].model`, `variants[].version`).

Usage: rewrite_path("/v2/models/digits/infer", "digits-v2", "3") → "/v2/models/digits-v2/versions/3/infer"
Understood forms: Open Inference Protocol v2 `/v2/models/NAME[/versions/V]/REST`, KServe v1 and TF Serving
`/v1/models/NAME[/versions/V][:VERB|/REST]`. Other paths are returned unchanged. The query is kept.
"""

from __future__ import annotations

import re

_MODEL_PATH = re.compile(
    r"^(?P<root>/v[12]/models/)(?P<name>[^/:?]+)(?:/versions/(?P<version>[^/:?]+))?(?P<rest>.*)$", re.S
)


def rewrite_path(path: str, model: str | None, version: str | None) -> str:
    """`path` asking for `model` (None: the name as sent) at `version` (None: the version as sent)."""
    if model is None and version is None:
        return path
    found = _MODEL_PATH.match(path)
    if found is None:
        return path
    name = model if model is not None else found["name"]
    wanted = version if version is not None else found["version"]
    versions = f"/versions/{wanted}" if wanted is not None else ""
    return f"{found['root']}{name}{versions}{found['rest']}"
