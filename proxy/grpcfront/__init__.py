"""outrider's gRPC port (`--grpc-listen`): the Open Inference Protocol's `inference.GRPCInferenceService` in
front of model servers' gRPC ports, through the same filters as HTTP (client address, auth, rate limits,
routing, outcome records).

`ModelInfer` is the experiment's traffic: routed by its model name (as `/v2/models/NAME[/versions/V]/infer`
would be over REST), sticky on the experiment's unit (a metadata key for `header:` units), forwarded to the
variant's `grpcUpstream`, recorded. Health and metadata calls, and `ModelStreamInfer` streams, go to the
stable variant's server unrecorded.
"""
