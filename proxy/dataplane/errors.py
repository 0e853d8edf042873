"""The one error tree of the sidecar. Each error carries its HTTP status and a stable `code`.

    OutriderError
    ├── Rejected            4xx: the request is refused before any upstream sees it
    │   ├── BadRequest          400 bad_request
    │   │   ├── BadFraming          400 bad_framing (the connection is closed)
    │   │   ├── BadPath             400 bad_path (a path that normalises badly or out of its prefix)
    │   │   └── HeadersTooLarge     431 headers_too_large (the data plane's head limits; connection closed)
    │   ├── VersionNotSupported 505 http_version_not_supported (a client fault; connection closed)
    │   ├── Unauthorized        401 unauthorized (with WWW-Authenticate)
    │   ├── Forbidden           403 forbidden
    │   │   └── BadFeedbackToken    403 bad_feedback_token (feedback without the token of its response)
    │   ├── NotFound            404 no_route
    │   │   ├── UnknownExperiment   404 not_found (admin: no experiment of that name)
    │   │   └── NoOutcomes          404 no_outcomes (admin: a process that writes no outcomes)
    │   ├── Conflict            409 conflict (admin: the phase does not allow the change)
    │   ├── RequestTimeout      408 request_timeout (a body under the minimum rate; connection closed)
    │   ├── PayloadTooLarge     413 payload_too_large
    │   ├── TooManyRequests     429 rate_limited (with Retry-After)
    │   └── TooManyConnections  429 too_many_connections (one client behind a trusted proxy)
    ├── Overloaded          503 overloaded: request bodies in memory at their cap (connection closed)
    ├── Unavailable         503 unavailable: outrider cannot do it now (admin; feedback with Redis away)
    │   ├── NotLeader           503 not_leader (another process leads this experiment)
    │   └── Starting            503 starting (the state keeper is not ready yet)
    └── UpstreamError       5xx: the upstream failed; outrider itself did not
        ├── UpstreamUnavailable 502 upstream_unavailable (connect refused, reset, bad response)
        └── UpstreamTimeout     504 upstream_timeout (route timeout)

Filters and admin handlers raise these; `error_body` is the one place they become a response body
(`{"code", "detail", "request_id"}` on the data ports, `{"code", "detail"}` on the admin port).
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson


class OutriderError(Exception):
    """Base of every error a filter may raise."""

    status: int = 500
    code: str = "internal"
    close_connection: bool = False

    def __init__(self, detail: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers: Mapping[str, str] = headers or {}


class Rejected(OutriderError):
    """The request is refused by outrider before reaching any upstream."""

    status = 400
    code = "rejected"


class BadRequest(Rejected):
    """Malformed request."""

    status = 400
    code = "bad_request"


class BadFraming(BadRequest):
    """Ambiguous message framing (e.g. Transfer-Encoding on HTTP/1.0): refuse and close the connection."""

    code = "bad_framing"
    close_connection = True


class HeadersTooLarge(BadRequest):
    """431: over the data plane's header count, or a header line over its line limit (proxy.dataplane.limits;
    the connection is closed)."""

    status = 431
    code = "headers_too_large"
    close_connection = True


class BadPath(BadRequest):
    """A path that is malformed, or escapes its experiment's prefix once normalised
    (`proxy.dataplane.paths`)."""

    code = "bad_path"


class VersionNotSupported(Rejected):
    """An HTTP version other than 1.0/1.1 on an HTTP/1 connection (e.g. `HTTP/2.0` in a request line)."""

    status = 505
    code = "http_version_not_supported"
    close_connection = True


class Unauthorized(Rejected):
    """Missing or invalid credentials."""

    status = 401
    code = "unauthorized"


class Forbidden(Rejected):
    """Valid credentials, not allowed."""

    status = 403
    code = "forbidden"


class BadFeedbackToken(Forbidden):
    """A feedback post without the `x-outrider-feedback-token` its request's response carried."""

    code = "bad_feedback_token"


class NotFound(Rejected):
    """No experiment matches and there is no default upstream."""

    status = 404
    code = "no_route"


class UnknownExperiment(NotFound):
    """The admin API was asked about an experiment this process does not run."""

    code = "not_found"


class NoOutcomes(NotFound):
    """The admin API's /outcomes on a process that writes none (the supervisor of `--workers N`)."""

    code = "no_outcomes"


class Conflict(Rejected):
    """A manual change the experiment's phase does not allow (already ended, not paused...)."""

    status = 409
    code = "conflict"


class RequestTimeout(Rejected):
    """The client sent its body slower than the minimum rate: refuse and close the connection."""

    status = 408
    code = "request_timeout"
    close_connection = True


class PayloadTooLarge(Rejected):
    """Body over the route's cap."""

    status = 413
    code = "payload_too_large"


class TooManyRequests(Rejected):
    """Rate limited; carries Retry-After."""

    status = 429
    code = "rate_limited"


class TooManyConnections(Rejected):
    """429 too_many_connections: one client (behind a trusted proxy) already holds its share of slots."""

    status = 429
    code = "too_many_connections"


class Overloaded(OutriderError):
    """503 overloaded: the request bodies held in memory are at their cap (the connection is closed)."""

    status = 503
    code = "overloaded"
    close_connection = True


class Unavailable(OutriderError):
    """outrider cannot do this now, though nothing is broken."""

    status = 503
    code = "unavailable"


class NotLeader(Unavailable):
    """Another process (or replica) leads this experiment: change it there."""

    code = "not_leader"


class Starting(Unavailable):
    """The state keeper is not ready yet."""

    code = "starting"


class UpstreamError(OutriderError):
    """The upstream failed; `error_class` is what the outcome record stores in `error`."""

    status = 502
    code = "upstream_error"
    error_class = "upstream_error"


class UpstreamUnavailable(UpstreamError):
    """Connect failure, reset, or an unreadable response."""

    status = 502
    code = "upstream_unavailable"

    def __init__(self, detail: str, *, error_class: str = "upstream_reset") -> None:
        super().__init__(detail)
        self.error_class = error_class


class UpstreamTimeout(UpstreamError):
    """The route timeout expired before the upstream answered."""

    status = 504
    code = "upstream_timeout"
    error_class = "timeout"


def error_body(err: OutriderError, request_id: str | None = None) -> bytes:
    """The JSON body of every error outrider answers: code, detail, and the request id on the data ports."""
    doc = {"code": err.code, "detail": err.detail}
    if request_id is not None:
        doc["request_id"] = request_id
    return orjson.dumps(doc)
