"""KServe 0.21's ModelServer as this predictor needs it; what stock 0.21 does otherwise:

- REST (uvicorn) and gRPC listen on one host (loopback here): stock binds 0.0.0.0 and [::].
- /v2/models/{name}/versions/{v}/... reach the model, with the version in a header: stock answers 501.
- The REST binary extension keeps each tensor's bytes as they came, as gRPC does: stock decodes
  them into Python lists on the event loop (seconds for a large image) and refuses BYTES that are
  not UTF-8 (an encoded image).
- FastAPI's own errors (malformed JSON, 404) answer OIP's {"error": ...}, a 400 for a bad body.
- A request without a Content-Type (tritonclient.http's, all inputs as JSON) is read as JSON.
"""
import re
from concurrent import futures

import orjson
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from grpc import aio
from kserve import InferInput, InferRequest, ModelServer
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import InvalidInput
from kserve.model_server import app
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor, LoggingInterceptor
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.infer_type import RequestedOutput
from starlette.exceptions import HTTPException as StarletteHTTPException

from .model import VERSION_HEADER

VERSIONED_PATH = re.compile(r"^/v2/models/([^/]+)/versions/([^/]+)(/infer|/ready)?$")
MAX_MESSAGE_BYTES = 256 * 2**20  # gRPC's default is 4 MiB: a 1024 px image, a layer's zip


class RawBinaryDataPlane(DataPlane):
    """The REST binary extension read as gRPC's raw contents are: each tensor keeps its bytes, and
    as_numpy() is np.frombuffer (or, for BYTES, the byte strings as sent)."""

    def decode_inference_request(self, body, headers, model_name):
        if not isinstance(body, bytes):
            return super().decode_inference_request(body, headers, model_name)
        length = headers.get(INFERENCE_CONTENT_LENGTH_HEADER)
        if length is None:
            raise InvalidInput(f"body: binary inputs need the {INFERENCE_CONTENT_LENGTH_HEADER} header")
        try:
            header = orjson.loads(body[:int(length)])
            inputs, offset = [], int(length)
            for spec in header["inputs"]:
                tensor = InferInput(spec["name"], spec["shape"], spec["datatype"], parameters=spec.get("parameters"))
                size = (spec.get("parameters") or {}).get("binary_data_size")
                if size is None:
                    tensor.data = spec["data"]
                elif offset + size > len(body):
                    raise InvalidInput(f"{spec['name']}: binary_data_size {size} runs past the body")
                else:
                    tensor._raw_data = body[offset:offset + size]
                    offset += size
                inputs.append(tensor)
            outputs = [RequestedOutput(o["name"], o.get("parameters")) for o in header.get("outputs") or []]
        except (ValueError, KeyError, TypeError) as error:  # orjson's JSONDecodeError is a ValueError
            raise InvalidInput(f"body: not an inference request with binary data ({type(error).__name__}: {error})")
        return InferRequest(model_name=model_name, infer_inputs=inputs, request_id=header.get("id"),
                            parameters=header.get("parameters"), request_outputs=outputs or None)


class ModelVersionPaths:
    """ASGI middleware: /v2/models/{m}/versions/{v}[/infer|/ready] -> /v2/models/{m}[...] with the
    version in VERSION_HEADER; a POST to .../infer without a Content-Type is JSON."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = [(k, v) for k, v in scope["headers"] if k != VERSION_HEADER.encode()]
            match = VERSIONED_PATH.match(scope["path"])
            if match:
                name, version, tail = match.groups()
                path = f"/v2/models/{name}{tail or ''}"
                scope = dict(scope, path=path, raw_path=path.encode())
                headers.append((VERSION_HEADER.encode(), version.encode()))
            names = {k.lower() for k, _ in headers}
            if scope["method"] == "POST" and scope["path"].endswith("/infer") and not names & {
                    b"content-type", INFERENCE_CONTENT_LENGTH_HEADER.lower().encode()}:
                headers.append((b"content-type", b"application/json"))
            scope = dict(scope, headers=headers)
        await self.app(scope, receive, send)


async def malformed_body(_, error: RequestValidationError):
    """FastAPI's 422 for a body that is not an inference request, as a 400 naming where."""
    first = (error.errors() or [{}])[0]
    where = "body" if first.get("type") == "json_invalid" else \
        ".".join(str(part) for part in first.get("loc", ())[1:]) or "body"
    return JSONResponse(status_code=400, content={"error": f"{where}: {first.get('msg', 'not an inference request')}"})


async def http_error(_, error: StarletteHTTPException):
    return JSONResponse(status_code=error.status_code, content={"error": str(error.detail)}, headers=error.headers)


class HostGRPCServer(GRPCServer):
    """kserve's GRPCServer.start, listening on one host."""

    def __init__(self, host: str, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.host = host

    async def start(self, max_workers):
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=(LoggingInterceptor(), ExceptionToStatusInterceptor()),
            options=[("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                     ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)])
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            InferenceServicer(self._data_plane, self._model_repository_extension), self._server)
        if self._server.add_insecure_port(f"{self.host}:{self._port}") == 0:
            raise RuntimeError(f"gRPC cannot listen on {self.host}:{self._port}")
        await self._server.start()
        await self._server.wait_for_termination()


class HostModelServer(ModelServer):
    """A ModelServer whose REST and gRPC servers listen on `host` alone; one process, one worker
    (uvicorn's worker processes would import kserve's app afresh, without these changes)."""

    def __init__(self, host: str, http_port: int, grpc_port: int):
        super().__init__(http_port=http_port, grpc_port=grpc_port, workers=1, enable_grpc=False,
                         enable_docs_url=False, enable_latency_logging=False, grace_period=10)
        self.dataplane = RawBinaryDataPlane(model_registry=self.registered_models)
        self.host = host
        app.add_middleware(ModelVersionPaths)
        # kserve adds handlers for its own errors when the REST server starts, not for these two.
        app.add_exception_handler(RequestValidationError, malformed_body)
        app.add_exception_handler(StarletteHTTPException, http_error)

    def setup_event_loop(self):
        # start() calls this once it has made the REST server, before it runs the servers.
        self._rest_server.config.host = self.host
        self._grpc_server = HostGRPCServer(self.host, self.grpc_port, self.dataplane, self.model_repository_extension,
                                           kwargs={}, grace_period=self.grace_period)
        self.servers.append(self._grpc_server.start(self.max_threads))
        super().setup_event_loop()
