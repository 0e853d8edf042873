"""The reference model container: onnxruntime behind aiohttp, speaking the Open Inference Protocol v2."""
