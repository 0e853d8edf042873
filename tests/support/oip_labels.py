"""A model server for tests that answers Open Inference Protocol requests with class labels, as many model
servers do by default: `python -m tests.support.oip_labels --name NAME [--flip-every K] [--binary] [--gzip]`.

A request carries integers (`{"inputs": [{"name": "x", "shape": [N, 1], "datatype": "INT64", "data": …}]}`);
the answer is one label per row, `v % 10`, as an INT64 output `predict` of shape [N, 1] — except that rows
with `v % K == 0` get the next label, `(v + 1) % 10`, when `--flip-every K` is given (a model that disagrees
on exactly those rows). Every answer has a random `id` and `model_version: NAME`, as real OIP servers send.
`--binary`: the output's data goes in the binary tensor extension (`Inference-Header-Content-Length`, raw
little-endian INT64 after the JSON); `--gzip`: the whole body is gzip-encoded (`Content-Encoding: gzip`).
Logs the `listening` line of tests/support/procs.py.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import uuid

import numpy as np
import orjson
from aiohttp import web

from tests.support.upstream import serve


def labels(values: list[int], flip_every: int) -> list[int]:
    """The label this server gives each input value."""
    return [(v + 1) % 10 if flip_every and v % flip_every == 0 else v % 10 for v in values]


def answer(name: str, values: list[int], flip_every: int, binary: bool) -> tuple[bytes, dict[str, str]]:
    """The body and headers of the answer to `values`."""
    predicted = labels(values, flip_every)
    out: dict[str, object] = {"name": "predict", "shape": [len(values), 1], "datatype": "INT64"}
    raw = np.asarray(predicted, dtype="<i8").tobytes()
    if binary:
        out["parameters"] = {"binary_data_size": len(raw)}
    else:
        out["data"] = predicted
    doc = {"model_name": "labels", "model_version": name, "id": str(uuid.uuid4()), "outputs": [out]}
    head = orjson.dumps(doc)
    if not binary:
        return head, {}
    return head + raw, {"Inference-Header-Content-Length": str(len(head))}


def make_app(name: str, flip_every: int, binary: bool, gzipped: bool) -> web.Application:
    """The application: POST .../infer answers labels; anything else 404."""

    async def infer(request: web.Request) -> web.Response:
        doc = orjson.loads(await request.read())
        values = [int(v) for v in doc["inputs"][0]["data"]]
        body, headers = answer(name, values, flip_every, binary)
        headers["Content-Type"] = "application/json" if not binary else "application/octet-stream"
        if gzipped:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/{tail:.*}/infer", infer)
    return app


async def main(port: int, name: str, flip_every: int, binary: bool, gzipped: bool) -> None:
    """Serve until killed."""
    await serve(make_app(name, flip_every, binary, gzipped), port, "oip-labels")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--name", default="labels")
    parser.add_argument("--flip-every", type=int, default=0, help="rows with v %% K == 0 get the next label")
    parser.add_argument("--binary", action="store_true", help="binary tensor extension")
    parser.add_argument("--gzip", action="store_true", help="gzip-encode the answers")
    ns = parser.parse_args()
    asyncio.run(main(ns.port, ns.name, ns.flip_every, ns.binary, ns.gzip))
