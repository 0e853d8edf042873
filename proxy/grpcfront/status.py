"""gRPC status codes and HTTP statuses, both ways, as outcome records and clients need them.

An outcome record keeps an HTTP-like status (the analysis counts ≥ 500 as errors): a gRPC answer is recorded
with the status a gRPC-HTTP gateway would give it. An error outrider raises (401, 429, 404, 504...) leaves
as the matching gRPC code.
"""

from __future__ import annotations

import grpc

HTTP_OF: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
_CODE_OF_HTTP = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    409: grpc.StatusCode.ABORTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def http_of(code: grpc.StatusCode) -> int:
    """The HTTP-like status recorded for a gRPC answer with `code`."""
    return HTTP_OF.get(code, 500)


def code_of_http(status: int) -> grpc.StatusCode:
    """The gRPC code a client gets for an error outrider answers with HTTP `status`."""
    if status in _CODE_OF_HTTP:
        return _CODE_OF_HTTP[status]
    return grpc.StatusCode.INTERNAL if status >= 500 else grpc.StatusCode.INVALID_ARGUMENT


def code_of_number(number: int) -> grpc.StatusCode:
    """The StatusCode with this wire number (UNKNOWN for numbers gRPC does not define)."""
    return _BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)
