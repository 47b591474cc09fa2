"""The KServe adapter for the featureviz engine: one kserve.Model per operation, over the same
Service as TorchServe's handler. Open Inference Protocol tensors (or KServe's v1 instances) in;
output tensors (or predictions), response headers and refusals out. Everything else is
featureviz.service's; KServe's server itself is kserve_predictor.server's."""
import json
import logging

import torch
from kserve import InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InferenceError, InvalidInput

from featureviz.service.instances import is_instances
from featureviz.service.operations import OPERATIONS
from featureviz.service.refusals import BadRequest, InternalError
from featureviz.service.service import Service
from featureviz.service.settings import Settings

from . import metadata, tensors
from .batches import Batches

logger = logging.getLogger(__name__)
VERSION_HEADER = "x-featureviz-model-version"  # a versioned REST path's version (server.ModelVersionPaths)


class OperationModel(Model):
    """One operation (the model's name), a Service per archive version; the first is the default."""

    def __init__(self, name: str, archives: list, device: torch.device):
        super().__init__(name, return_response_headers=True)
        self.explains = OPERATIONS[name].explains
        self.default_version = archives[0].version
        self.batches = {}
        for archive in archives:
            service = Service(name, archive.state_dict, archive.weights, archive.version, device,
                              Settings(archive.config.get("handler", {})))
            self.batches[archive.version] = Batches(
                lambda jobs, service=service: run_jobs(service, jobs), int(archive.config.get("batchSize", 1)),
                int(archive.config.get("maxBatchDelay", 0)) / 1000, f"{name}-{archive.version}")
            logger.info("%s %s ready on %s with %s weights: %s", name, archive.version, device,
                        archive.weights["source"], service.operation.describe())
        self.ready = True

    def get_input_types(self):
        return metadata.inputs(self.name)

    def get_output_types(self):
        return metadata.outputs(self.name)

    async def predict(self, payload, headers=None, response_headers=None):
        version = self._version(payload, headers)
        if isinstance(payload, InferRequest):
            job = (lambda: (None, tensors.request_fields(payload.inputs)),
                   lambda answer: v2_response(self.name, payload, version, answer))
        else:  # v1: {"instances": [...]}
            job = (lambda: (instances(payload), {}), json_response)
        headers_out, response = await self.batches[version].submit(job)
        response_headers.update(headers_out)
        return response

    async def explain(self, payload, headers=None):
        """KServe's v1 :explain, as TorchServe's /explanations: the attribution operations' JSON
        (unless an instance sends `output: png`)."""
        if not self.explains:
            explained = ", ".join(name for name, operation in OPERATIONS.items() if operation.explains)
            raise InvalidInput(f"model: {self.name} has no explanations; use :predict, or one of {explained}")
        job = (lambda: (as_json_by_default(instances(payload)), {}), json_response)
        return (await self.batches[self._version(payload, headers)].submit(job))[1]

    def _version(self, payload, headers) -> str:
        """gRPC names a version in the request; a versioned REST path in a header."""
        version = getattr(payload, "model_version", None) or (headers or {}).get(VERSION_HEADER)
        if version and version not in self.batches:
            raise InvalidInput(f"model_version: {version!r} is not served; versions: {', '.join(self.batches)}")
        return version or self.default_version


def run_jobs(service: Service, jobs: list) -> list:
    """A batch of jobs, (read, respond), in the batch's thread: each request read and parsed, all
    run by the service together, each answer made the response: (headers, response) or the
    exception that answers it."""
    parsed = []
    for read, _ in jobs:
        try:
            parsed.append(refuse_stream(service.parse(*read())))
        except BadRequest as refusal:
            parsed.append(refusal)
        except Exception as error:
            logger.exception("%s: a request could not be read", service.operation.name)
            parsed.append(InternalError(f"the request could not be read ({type(error).__name__})"))
    outcomes = []
    for (_, respond), answer in zip(jobs, service.run(parsed).answers):
        try:
            outcomes.append((answer.headers, respond(answer)))
        except Exception as error:
            outcomes.append(error)
    return outcomes


def refuse_stream(request):
    """A parsed request, or the refusal of one that asks to stream: the protocol answers once."""
    if getattr(request, "stream", False):
        return BadRequest("stream", "the Open Inference Protocol answers once; send stream false (or no stream)")
    return request


def instances(payload):
    if not is_instances(payload):
        raise BadRequest("instances", "KServe's v1 protocol sends {\"instances\": [{fields}, ...]}")
    return payload


def as_json_by_default(body: dict) -> dict:
    if not isinstance(body["instances"], list):
        return body  # the service refuses it, naming instances
    return {**body, "instances": [{"output": "json", **i} if isinstance(i, dict) else i for i in body["instances"]]}


def check(answer):
    """A refusal as the exception KServe answers it with: 400 / INVALID_ARGUMENT, or 500 / INTERNAL."""
    if answer.status != 200:
        message = answer.refusal.body()["message"]
        raise InvalidInput(message) if answer.status < 500 else InferenceError(message)


def json_response(answer) -> dict:
    check(answer)
    return json.loads(answer.body)


def v2_response(model: str, request: InferRequest, version: str, answer) -> InferResponse:
    """The answer's outputs, those the request names; each serialized now, as gRPC and REST's
    binary extension carry it (KServe makes JSON of it where a REST request asks for JSON)."""
    check(answer)
    asked = {output.name: output.binary_data for output in request.request_outputs or []}

    def as_json(name):
        return not request.from_grpc and not (asked[name] if asked else request.use_binary_outputs)
    try:
        outputs = tensors.requested(tensors.answer_outputs(model, answer.content_type, answer.body), asked, as_json)
    except BadRequest as refusal:
        raise InvalidInput(refusal.body()["message"]) from None
    return InferResponse(response_id=request.id or "", model_name=model, model_version=version,
                         infer_outputs=[infer_output(output) for output in outputs],
                         use_binary_outputs=request.use_binary_outputs, requested_outputs=request.request_outputs)


def infer_output(output: tensors.Output) -> InferOutput:
    tensor = InferOutput(output.name, list(output.array.shape), output.datatype)
    tensor.set_data_from_numpy(output.array, binary_data=True)
    return tensor
