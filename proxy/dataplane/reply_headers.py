"""The headers outrider adds to every answer of the data port, whichever server writes it.

Usage: `experiment, variant = finish(reply, exchange, request_id)` (then observe the request metrics)
"""

from __future__ import annotations

from proxy.dataplane.exchange import Exchange, Reply
from proxy.feedback.token import HEADER as FEEDBACK_TOKEN

REQUEST_ID = "x-request-id"
VARIANT = "x-outrider-variant"
_REQUEST_ID = REQUEST_ID.encode()
_VARIANT = VARIANT.encode()


def finish(reply: Reply, ex: Exchange | None, rid: str) -> tuple[str, str]:
    """Add outrider's headers to `reply` (in place, as the edge does); returns (experiment, variant) for the
    request metrics."""
    experiment, variant, expose = "", "none", True
    if ex is not None:
        if ex.assignment is not None:
            experiment, variant = ex.assignment.experiment.name, ex.assignment.variant.name
            expose = ex.assignment.experiment.expose_variant
        elif ex.upstream_url is not None:
            variant = "default"
    raw = reply.raw
    if raw is not None and (ex is None or not ex.extra):
        # an upstream's headers as it sent them: its copies of these were dropped as its head was read
        raw.add(_REQUEST_ID, rid.encode("utf-8", "surrogateescape"))
        if expose:
            raw.add(_VARIANT, variant.encode("utf-8", "surrogateescape"))
        return experiment, variant
    headers = reply.headers
    if FEEDBACK_TOKEN in headers:  # only outrider's own (in ex.extra), never an upstream's
        headers.popall(FEEDBACK_TOKEN)
    if ex is not None and ex.extra:
        headers.update(ex.extra)
    headers[REQUEST_ID] = rid
    if expose:
        headers[VARIANT] = variant
    elif VARIANT in headers:  # `spec.exposeVariant: false`: not even an upstream's copy
        headers.popall(VARIANT)
    return experiment, variant
