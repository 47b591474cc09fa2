"""TorchServe adapter for the featureviz engine: parse, call the engine, encode.

The registered model name selects the operation: `visualize`, `activations`, or one of
featureviz.explain's (deconv, saliency, gradcam, occlusion, layers, filters).
"""
import json
import logging
import os
import time

import torch
from ts.metrics.dimension import Dimension
from ts.metrics.metric_type_enum import MetricTypes
from ts.torch_handler.base_handler import BaseHandler
from ts.utils.util import PredictionException

from featureviz.allocator import keep_freed_memory, release_freed_memory
from featureviz.cache import ResultCache
from featureviz.explain import OPERATIONS as EXPLAIN_OPERATIONS
from featureviz.explain import Explained, parse_explain, run_explain
from featureviz.fields import BadRequest, request_fields
from featureviz.image import grid_png, to_png
from featureviz.network import build_model, classifier_net
from featureviz.operations import (parse_activations, parse_visualize, run_activations, run_visualize,
                                   visualize_batches, visualize_cache_key)
from featureviz.precision import check as check_precision
from featureviz.precision import default_precision
from featureviz.weights import load_state_dict

logger = logging.getLogger(__name__)
OPERATIONS = ("visualize", "activations", *EXPLAIN_OPERATIONS)
JSON_BODY = ("visualize", "layers", "filters")  # the others take an image as the body
PHRASES = {400: "Bad Request", 413: "Payload Too Large", 507: "Insufficient Storage"}
UNTRAINED = "untrained: seeded random weights (WEIGHTS=random), no learned features"


class FeatureVizHandler(BaseHandler):
    def initialize(self, context):
        properties = context.system_properties
        self.operation = context.model_name
        if self.operation not in OPERATIONS:
            raise ValueError(f"register this archive as one of {OPERATIONS}, not {self.operation!r}")
        gpu = properties.get("gpu_id")
        use_cuda = torch.cuda.is_available() and gpu is not None
        self.device = torch.device(f"cuda:{gpu}" if use_cuda else "cpu")
        self.model_dir = model_dir = properties["model_dir"]
        with open(os.path.join(model_dir, "weights.json")) as f:
            self.weights = json.load(f)
        state_dict = load_state_dict(os.path.join(model_dir, context.manifest["model"]["serializedFile"]))
        model = build_model(state_dict, self.device)
        self.features = model.features
        self.net = classifier_net(model)
        self.version = context.manifest["model"].get("modelVersion", "")
        settings = (getattr(context, "model_yaml_config", None) or {}).get("handler", {})
        self.cache = self._make_cache(settings)
        self.precision = self._precision(settings)
        self.batch_images = self._batch_images(settings)
        # On the CPU, large activations from reused heap memory rather than fresh pages every step.
        self.keeps_freed_memory = self.device.type == "cpu" and keep_freed_memory()
        self.initialized = True
        logger.info("%s ready on %s (%s) with %s weights", self.operation, self.device, self.precision,
                    self.weights["source"])

    def _precision(self, settings):
        chosen = str(os.environ.get("FEATUREVIZ_PRECISION") or settings.get("precision") or "auto")
        return default_precision(self.device) if chosen == "auto" else check_precision(chosen)

    @staticmethod
    def _batch_images(settings):
        chosen = os.environ.get("FEATUREVIZ_BATCH_IMAGES") or settings.get("batch_images", 4)
        if not str(chosen).isdigit() or int(chosen) < 1:
            raise ValueError(f"batch_images must be a positive integer, not {chosen!r}")
        return int(chosen)

    @staticmethod
    def _make_cache(settings):
        folder = (os.environ.get("FEATUREVIZ_CACHE_DIR") or settings.get("cache_dir")
                  or os.path.join(os.path.expanduser("~"), ".cache", "featureviz"))
        max_mb = float(settings.get("cache_max_mb", 1024))
        return ResultCache(folder, int(max_mb * 2**20)) if max_mb > 0 else None

    def _cache_key(self, request):
        return visualize_cache_key(request, weights=self.weights["sha256"], device=self.device.type,
                                   precision=self.precision, model_version=self.version)

    def preprocess(self, data):
        """Each request -> a validated engine request, or the BadRequest that refuses it."""
        parsed = []
        for request in data:
            try:
                parsed.append(self._parse(request_fields(request, body_is_json=self.operation in JSON_BODY)))
            except BadRequest as error:
                parsed.append(error)
        return parsed

    def _parse(self, fields):
        if self.operation in EXPLAIN_OPERATIONS:
            return parse_explain(self.operation, fields, self.net)
        if self.operation == "visualize":
            return parse_visualize(fields, self.features)
        return parse_activations(fields, self.features)

    def inference(self, requests):
        """No inference_mode here: visualize needs gradients with respect to the pixels.

        Returns (request, result) pairs; a refused request is its own result."""
        try:
            return list(zip(requests, self._results(requests)))
        finally:
            self._release_memory()

    def _results(self, requests):
        valid = [i for i, r in enumerate(requests) if not isinstance(r, BadRequest)]
        results = list(requests)
        if self.operation == "activations":
            for i, result in zip(valid, run_activations(self.features, [requests[i] for i in valid])):
                results[i] = result
        elif self.operation in EXPLAIN_OPERATIONS:
            for i in valid:
                results[i] = self._explain(requests[i])
        else:
            for i, result in zip(valid, self._visualize([requests[i] for i in valid])):
                results[i] = result
        return results

    def _visualize(self, requests):
        """(PNG, cache hit) or a refusal for each request; for `filters` the labelled grid of its
        single-filter images. Each single-filter image is computed at most once a batch, and those
        of one layer and schedule that the cache lacks are optimized together (exact, see
        featureviz.render), then cached one by one as what their single requests return."""
        keys = {single: self._cache_key(single) for request in requests for single in request.singles()}
        images = {}  # single-filter request (identical ones are equal) -> (PNG, cache hit) or BadRequest
        for single, key in keys.items():
            cached = self.cache.get(key) if self.cache else None
            if cached is not None:
                images[single] = (cached, True)
        for batch in visualize_batches([single for single in keys if single not in images], self.batch_images):
            for single, png in zip(batch, self._optimize(batch)):
                if isinstance(png, BadRequest):
                    images[single] = png
                else:
                    images[single] = (png, False)
                    if self.cache:
                        self.cache.put(keys[single], png)
        return [self._answer(request, [images[single] for single in request.singles()]) for request in requests]

    def _answer(self, request, singles):
        """A request's answer from its single-filter images: (PNG, cache hit), grid or refusal."""
        refused = next((s for s in singles if isinstance(s, BadRequest)), None)
        if refused or request.filters is None:
            return refused or singles[0]
        text = {"layer": request.layer, "filters": ",".join(map(str, request.filters)), "seed": request.seed,
                "precision": self.precision, **self._png_note()}
        grid = grid_png([f"filter {f}" for f in request.filters], [png for png, _ in singles], text)
        return grid, all(hit for _, hit in singles)

    def _explain(self, request):
        try:
            return run_explain(self.net, request)
        except torch.OutOfMemoryError:
            logger.exception("%s ran out of memory", self.operation)
            return BadRequest("size", "the request does not fit in this worker's memory; lower size", 507)

    def _png_text(self, request, result):
        return {"layer": request.layer, "filter": request.filter, "seed": request.seed,
                "activation_start": f"{result.activation_start:.6g}",
                "activation_final": f"{result.activation_final:.6g}", "precision": self.precision,
                **self._png_note()}

    def _optimize(self, batch):
        """Single-filter requests of one layer and schedule -> a PNG or a refusal for each."""
        try:
            start = time.perf_counter()
            results = run_visualize(self.features, batch, self.precision)
        except torch.OutOfMemoryError:
            if len(batch) > 1:
                logger.warning("%d images together ran out of memory; optimizing them one by one", len(batch))
                return [png for single in batch for png in self._optimize([single])]
            logger.exception("visualize ran out of memory")
            return [BadRequest("size", "the request does not fit in this worker's memory; "
                                       "lower size, upscaling_steps or upscaling_factor", 507)]
        metrics = self.context.metrics
        metrics.add_time("VisualizeDuration", (time.perf_counter() - start) * 1000, None, "ms", [])
        steps = batch[0].schedule.opt_steps * batch[0].schedule.upscaling_steps
        metrics.add_counter("VisualizeOptimizationSteps", steps * len(batch), None, [])
        if results[0].batched_sides:
            metrics.add_counter("VisualizeImagesBatched", len(batch), None, [])
            logger.info("optimized %d images of layer %d together at sides %s", len(batch), batch[0].layer,
                        results[0].batched_sides)
        for result in results:
            metrics.add_metric("VisualizeFinalActivation", result.activation_final, "activation", None,
                               [Dimension("Layer", str(batch[0].layer))], MetricTypes.GAUGE)
        return [to_png(result.image, self._png_text(single, result)) for single, result in zip(batch, results)]

    def _release_memory(self):
        if self.keeps_freed_memory:
            release_freed_memory()  # what a batch freed goes back to the system between batches

    def postprocess(self, pairs):
        encoded = [self._encode(i, request, result) for i, (request, result) in enumerate(pairs)]
        refused = pairs[0][1]
        if len(pairs) == 1 and isinstance(refused, BadRequest) and self._over_grpc(0):
            # TorchServe's gRPC frontend ignores per-request statuses; only a batch-level error
            # becomes a gRPC status (400 -> INVALID_ARGUMENT), with our JSON as its message.
            raise PredictionException(encoded[0], refused.status)
        return encoded

    def _over_grpc(self, idx):
        # The HTTP frontend adds `url_path` (and the HTTP headers) to every request; gRPC adds none.
        return "url_path" not in self.context.get_all_request_header(idx)

    def _encode(self, idx, request, result):
        context = self.context
        context.set_response_header(idx, "X-Model-Version", self.version)
        if not self.weights["trained"]:
            context.set_response_header(idx, "X-Weights", UNTRAINED)
        if isinstance(result, BadRequest):
            context.metrics.add_counter("RequestErrors", 1, None, [Dimension("Field", result.field),
                                                                    Dimension("Status", str(result.status))])
            context.set_response_status(result.status, PHRASES.get(result.status, "Bad Request"), idx)
            context.set_response_content_type(idx, "application/json")
            return json.dumps({**result.body(), "model_version": self.version})
        if isinstance(result, Explained) and request.values["output"] == "png":
            context.set_response_content_type(idx, "image/png")
            return result.png(self._png_note())
        if isinstance(result, Explained) or self.operation == "activations":
            numbers = result.json() if isinstance(result, Explained) else result
            context.set_response_content_type(idx, "application/json")
            return json.dumps({**numbers, "model_version": self.version, "weights": self._weights_note()})
        context.set_response_content_type(idx, "image/png")
        png, hit = result
        context.set_response_header(idx, "X-Cache", "hit" if hit else "miss")
        context.metrics.add_counter("VisualizeCacheHits" if hit else "VisualizeCacheMisses", 1, None, [])
        return png

    def _png_note(self):
        """What every PNG says in its text: the version that made it and its weights."""
        return {"model_version": self.version, "weights": self._weights_note()["description"]}

    def _weights_note(self):
        w = self.weights
        description = UNTRAINED if not w["trained"] else f"{w['source']} (sha256 {w['sha256'][:12]})"
        return {"source": w["source"], "trained": w["trained"], "sha256": w["sha256"], "description": description}
