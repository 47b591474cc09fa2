"""Calls to a running server's gRPC inference API, for the clients in scripts/ and the suite."""
import json

import grpc

from serving.grpc_stubs import load

MESSAGE_LIMIT = 64 << 20  # a layer's pictures in one answer


def inference_key(key_file: str) -> str:
    """The inference key of TorchServe's key_file.json, or the key in a plain file (.api_key of
    `make serve-cluster`)."""
    with open(key_file) as f:
        text = f.read()
    try:
        return json.loads(text)["inference"]["key"]
    except (ValueError, KeyError, TypeError):
        return text.strip()


def _channel(address: str) -> grpc.Channel:
    return grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", MESSAGE_LIMIT),
                                                   ("grpc.max_send_message_length", MESSAGE_LIMIT)])


def _request(model: str, inputs: dict, version: str):
    messages, stubs = load("inference")
    encoded = {k: v if isinstance(v, bytes) else str(v).encode() for k, v in inputs.items()}
    return messages.PredictionsRequest(model_name=model, model_version=version, input=encoded), stubs


def predict(address: str, key: str, model: str, inputs: dict, version: str = "", timeout: float = 3600) -> bytes:
    """The `prediction` bytes; raises grpc.RpcError with TorchServe's status and message."""
    request, stubs = _request(model, inputs, version)
    with _channel(address) as channel:
        return stubs.InferenceAPIsServiceStub(channel).Predictions(
            request, metadata=[("authorization", f"Bearer {key}")], timeout=timeout).prediction


def stream_predict(address: str, key: str, model: str, inputs: dict, version: str = "", timeout: float = 3600):
    """Each message's `prediction` of StreamPredictions, as it comes (one NDJSON event each for a
    streamed visualize)."""
    request, stubs = _request(model, inputs, version)
    with _channel(address) as channel:
        for response in stubs.InferenceAPIsServiceStub(channel).StreamPredictions(
                request, metadata=[("authorization", f"Bearer {key}")], timeout=timeout):
            yield response.prediction
