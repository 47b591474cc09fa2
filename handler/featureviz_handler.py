"""TorchServe adapter for the featureviz engine: TorchServe's request dicts in; statuses, headers,
content types, metrics and bytes out. Everything else is featureviz.service's.

The registered model name selects the operation (featureviz.service.operations).
"""
import json
import logging
import os

import torch
from ts.handler_utils.utils import send_intermediate_predict_response
from ts.metrics.dimension import Dimension
from ts.metrics.metric_type_enum import MetricTypes
from ts.torch_handler.base_handler import BaseHandler
from ts.utils.util import PredictionException

from featureviz.model.weights import load_state_dict
from featureviz.service.service import Service
from featureviz.service.settings import Setting, Settings, boolean

logger = logging.getLogger(__name__)
STREAM_NEXT = "ts_stream_next"  # TorchServe's header: "true" on a stream's parts but the last
PHRASES = {400: "Bad Request", 413: "Payload Too Large", 500: "Internal Server Error", 507: "Insufficient Storage"}
# TorchServe 0.12 does not tell a handler whether a gRPC request came by Predictions or
# StreamPredictions (docs/api.md, "Streaming over gRPC"), and a progress part sent to a unary
# Predictions call breaks that worker for good. So gRPC gets progress only where every client
# sends `stream` by StreamPredictions.
GRPC_STREAM = Setting("grpc_stream", False, boolean, "true or false")


def _body_and_parts(request: dict):
    """A JSON body comes decoded under `body`, any other body as bytes under `body`; form fields and
    gRPC inputs come as keys of their own."""
    return request.get("body"), {k: v for k, v in request.items() if k != "body"}


class FeatureVizHandler(BaseHandler):
    def initialize(self, context):
        properties = context.system_properties
        gpu = properties.get("gpu_id")
        device = torch.device(f"cuda:{gpu}" if torch.cuda.is_available() and gpu is not None else "cpu")
        model_dir = properties["model_dir"]
        with open(os.path.join(model_dir, "weights.json")) as f:
            weights = json.load(f)
        state_dict = load_state_dict(os.path.join(model_dir, context.manifest["model"]["serializedFile"]))
        settings = Settings((getattr(context, "model_yaml_config", None) or {}).get("handler", {}))
        self.grpc_stream = settings[GRPC_STREAM]
        version = context.manifest["model"].get("modelVersion", "")
        self.service = Service(context.model_name, state_dict, weights, version, device, settings)
        self.initialized = True
        logger.info("%s ready on %s with %s weights: %s", context.model_name, device, weights["source"],
                    self.service.operation.describe())

    def preprocess(self, data):
        return [self.service.parse(*_body_and_parts(request)) for request in data]

    def inference(self, requests):
        """Not BaseHandler's: no inference_mode here (visualize needs gradients of the pixels)."""
        return self.service.run(requests, emit=self._send_progress)

    def explain_handle(self, data_preprocess, raw_data):
        """TorchServe's /explanations/{model} (and KServe v1's :explain, which it serves): the
        attribution operations' answers as JSON unless a request sends `output: png`."""
        return self.postprocess(self.inference([self.service.parse_explanation(*_body_and_parts(request))
                                                for request in raw_data]))

    def _send_progress(self, idx, content_type, headers, data) -> bool:
        """One part of request idx's streamed answer, now: an HTTP chunk, a gRPC StreamPredictions
        message (where grpc_stream allows). The first part carries the answer's status and headers."""
        if self._over_grpc(idx) and not self.grpc_stream:
            return False
        context = self.context
        for name, value in headers.items():
            context.set_response_header(idx, name, value)
        context.set_response_content_type(idx, content_type)
        send_intermediate_predict_response({idx: data}, {idx: context.request_ids[idx]},
                                           "Intermediate Prediction success", 200, context)
        return True

    def postprocess(self, batch):
        context = self.context
        for metric in batch.metrics:
            self._emit(metric)
        for idx, answer in enumerate(batch.answers):
            for name, value in answer.headers.items():
                context.set_response_header(idx, name, value)
            context.set_response_content_type(idx, answer.content_type)
            if answer.status != 200:
                context.set_response_status(answer.status, PHRASES.get(answer.status, "Error"), idx)
            if self._over_grpc(idx):
                # The last part of a StreamPredictions answer must say so, or the frontend fails
                # on it and loses the worker; a unary Predictions call ignores the header. Not
                # over HTTP: there it would make a plain answer a chunked one without its headers.
                context.set_response_header(idx, STREAM_NEXT, "false")
        if batch.restart:
            self.service = self.service.rebuilt(batch.restart)
        lone = batch.answers[0]
        if len(batch.answers) == 1 and lone.status != 200 and self._over_grpc(0):
            # TorchServe's gRPC frontend ignores per-request statuses; only a batch-level error
            # becomes a gRPC status (400 -> INVALID_ARGUMENT), with our JSON as its message.
            raise PredictionException(lone.body.decode(), lone.status)
        return [answer.body for answer in batch.answers]

    def _over_grpc(self, idx):
        # The HTTP frontend passes the request's HTTP headers (`Host` always; `url_path` on
        # /predictions, not on KServe's /v1 routes); gRPC passes neither.
        names = {name.lower() for name in self.context.get_all_request_header(idx)}
        return not names & {"url_path", "host"}

    def _emit(self, metric):
        metrics = self.context.metrics
        dimensions = [Dimension(name, value) for name, value in metric.dimensions.items()]
        if metric.kind == "time":
            metrics.add_time(metric.name, metric.value, None, metric.unit, dimensions)
        elif metric.kind == "gauge":
            metrics.add_metric(metric.name, metric.value, metric.unit, None, dimensions, MetricTypes.GAUGE)
        else:
            metrics.add_counter(metric.name, metric.value, None, dimensions)
