"""The KServe adapter for the featureviz engine: one kserve.Model per operation, over the same
Service as TorchServe's handler. Open Inference Protocol tensors (or KServe's v1 instances) in;
output tensors (or predictions), response headers and refusals out. Everything else is
featureviz.service's; KServe's server itself is kserve_predictor.server's."""
import json
import logging

import torch
from kserve import InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InferenceError, InvalidInput

from featureviz.service.refusals import BadRequest
from featureviz.service.service import Service
from featureviz.service.settings import Settings

from . import metadata, tensors
from .batches import Batches
from .jobs import instances, run_jobs

logger = logging.getLogger(__name__)
VERSION_HEADER = "x-featureviz-model-version"  # a versioned REST path's version (server.ModelVersionPaths)


class OperationModel(Model):
    """One operation (the model's name), a Service per archive version; the first is the default."""

    def __init__(self, name: str, archives: list, device: torch.device):
        super().__init__(name, return_response_headers=True)
        self.default_version = archives[0].version
        self.services, self.batches = {}, {}
        for archive in archives:
            version = archive.version
            self.services[version] = Service(name, archive.state_dict, archive.weights, version, device,
                                             Settings(archive.config.get("handler", {})))
            self.batches[version] = Batches(lambda jobs, version=version: run_jobs(self.services, version, jobs),
                                            int(archive.config.get("batchSize", 1)),
                                            int(archive.config.get("maxBatchDelay", 0)) / 1000, f"{name}-{version}")
            logger.info("%s %s ready on %s with %s weights: %s", name, version, device, archive.weights["source"],
                        self.services[version].operation.describe())
        self.ready = True

    def get_input_types(self):
        return metadata.inputs(self.name)

    def get_output_types(self):
        return metadata.outputs(self.name)

    async def predict(self, payload, headers=None, response_headers=None):
        version = self._version(payload, headers)
        if isinstance(payload, InferRequest):
            job = (lambda: (None, tensors.request_fields(payload.inputs)),
                   lambda answer: v2_response(self.name, payload, version, answer), False)
        else:  # v1: {"instances": [...]}
            job = (lambda: (instances(payload), {}), json_response, False)
        headers_out, response = await self.batches[version].submit(job)
        response_headers.update(headers_out)
        return response

    async def explain(self, payload, headers=None):
        """KServe's v1 :explain, as TorchServe's /explanations: the attribution operations' JSON
        (unless an instance sends `output: png`); the other operations refuse it."""
        job = (lambda: (instances(payload), {}), json_response, True)
        return (await self.batches[self._version(payload, headers)].submit(job))[1]

    def _version(self, payload, headers) -> str:
        """gRPC names a version in the request; a versioned REST path in a header."""
        version = getattr(payload, "model_version", None) or (headers or {}).get(VERSION_HEADER)
        if version and version not in self.batches:
            raise InvalidInput(f"model_version: {version!r} is not served; versions: {', '.join(self.batches)}")
        return version or self.default_version


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
