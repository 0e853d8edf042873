"""The Open Inference Protocol over gRPC (KServe v2 `inference.GRPCInferenceService`), shared by outrider's
gRPC port (proxy.grpcfront) and the reference model server (modelserver.grpc_service).

The message classes are built from grpc_service.proto's descriptor in a private descriptor pool
(oipgrpc.messages), not generated into the default one: a process that also loads another copy of this
protocol (tritonclient's stubs, say) would otherwise fail on the duplicate `inference.*` names.
"""
