"""A batch of the KServe predictor's requests run by one Service (no kserve import): each request
read and parsed, refused alone where it must be (a bad field, `stream`, an explanation of an
operation without one, a request that cannot be read), the answers in order; past the memory
ceiling the service is built again once the batch is answered, and answers as before."""
import base64
import json
import logging

import pytest
import torch

from featureviz.service.service import Service
from featureviz.service.settings import Settings
from kserve_predictor.jobs import run_jobs
from tests.support import TINY
from tests.support.images import photo
from tests.support.operations import WEIGHTS

IMAGE = {"data": photo(32), "layer": 9, "size": 32}


def service(state_dict, operation, **environ):
    return Service(operation, state_dict, WEIGHTS, "1.0", torch.device("cpu"), Settings({}, environ=environ))


def job(parts, explanation=False, body=None):
    return (lambda: (body, parts), lambda answer: answer, explanation)


def statuses(outcomes):
    return [answer.status for _, answer in outcomes]


@pytest.fixture(scope="module")
def visualize(state_dict):
    return {"1.0": service(state_dict, "visualize")}


def test_a_batch_answers_each_request_in_order_and_refuses_alone(visualize):
    outcomes = run_jobs(visualize, "1.0", [job({"layer": 7, "filter": 3, **TINY}), job({"layer": 7, **TINY}),
                                           job({"layer": 7, "filter": 3, "stream": True, **TINY})])
    assert statuses(outcomes) == [200, 400, 400]
    headers, first = outcomes[0]
    assert first.content_type == "image/png" and headers["X-Model-Version"] == "1.0"
    assert json.loads(outcomes[1][1].body)["field"] == "filter"
    assert json.loads(outcomes[2][1].body)["field"] == "stream"


def test_a_request_that_cannot_be_read_fails_alone_with_a_500(visualize):
    def unreadable():
        raise RuntimeError("broken")
    outcomes = run_jobs(visualize, "1.0", [(unreadable, lambda a: a, False), job({"layer": 7, "filter": 4, **TINY})])
    assert statuses(outcomes) == [500, 200]


def test_a_response_that_fails_is_its_requests_outcome_alone(visualize):
    def failing(answer):
        raise ValueError("no response")
    outcomes = run_jobs(visualize, "1.0", [(lambda: (None, {"layer": 7, "filter": 5, **TINY}), failing, False),
                                           job({"layer": 7, "filter": 6, **TINY})])
    assert isinstance(outcomes[0], ValueError) and outcomes[1][1].status == 200


def test_explanations_answer_json_and_other_operations_refuse_them(state_dict):
    instances = {"instances": [{k: {"b64": base64.b64encode(v).decode()} if k == "data" else v
                                for k, v in IMAGE.items()}]}
    gradcam = {"1.0": service(state_dict, "gradcam")}
    (_, explained), = run_jobs(gradcam, "1.0", [job({}, explanation=True, body=instances)])
    assert explained.status == 200 and "heatmap" in json.loads(explained.body)["predictions"][0]
    layers = {"1.0": service(state_dict, "layers")}
    (_, refused), = run_jobs(layers, "1.0", [job({}, explanation=True, body={"instances": [{}]})])
    assert refused.status == 400 and json.loads(refused.body)["field"] == "model"


def test_past_the_memory_ceiling_the_service_is_built_again_after_the_batch(state_dict, caplog):
    services = {"1.0": service(state_dict, "activations", FEATUREVIZ_MEMORY_CEILING_MB="1")}
    first = services["1.0"]
    parts = {**IMAGE, "layer": b"9", "size": b"32"}
    with caplog.at_level(logging.WARNING):
        before = run_jobs(services, "1.0", [job(parts)])
    assert services["1.0"] is not first and first.model is None
    assert "activations restarts its service" in caplog.text
    after = run_jobs(services, "1.0", [job(parts)])
    assert statuses(before) == statuses(after) == [200] and before[0][1].body == after[0][1].body
