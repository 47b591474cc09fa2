"""Each model's metadata names what its requests may send and what its answers hold: every field of
the operation as an input of its kind, and every output an answer carries (pictures, JSON and
zips, as the service answers them) with its datatype and a shape that fits."""
import pytest

from featureviz.service.answers import answer as answer_of
from featureviz.service.channel import Channel
from featureviz.service.operations import OPERATIONS
from kserve_predictor import metadata
from kserve_predictor.tensors import answer_outputs
from tests.support import TINY
from tests.support.images import photo
from tests.support.operations import operation_of

IMAGE = {"data": photo(32), "size": "32"}
REQUESTS = {
    "visualize": [{"layer": "7", "filter": "3", **TINY}, {"layer": "7", "filters": "[1, 2]", **TINY},
                  {"layer": "7", "filters": "[1, 2]", "output": "zip", **TINY},
                  {"objective": '[{"channel": [7, 3]}, {"channel": [7, 4], "weight": -1}]', **TINY},
                  {"layer": "7", "filter": "3", "param": "fft", "size": "16", "opt_steps": "2"}],
    "activations": [{**IMAGE, "layer": "7"}],
    "deconv": [{**IMAGE, "layer": "7"}, {**IMAGE, "layer": "7", "output": "json"}],
    "saliency": [IMAGE, {**IMAGE, "method": "integrated_gradients", "steps": "2", "output": "json"}],
    "gradcam": [IMAGE, {**IMAGE, "output": "json"}],
    "occlusion": [{**IMAGE, "window": "16", "stride": "16"},
                  {**IMAGE, "window": "16", "stride": "16", "output": "json"}],
    "layers": [{"size": "32"}, {"size": "32", "output": "json"}],
    "filters": [{"layer": "0"}, {"layer": "3", "filter": "1", "output": "json"}],
}


def fits(shape, declared) -> bool:
    return len(shape) == len(declared) and all(d in (-1, s) for s, d in zip(shape, declared))


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_every_output_of_an_answer_is_declared_with_its_datatype_and_shape(engine, operation):
    declared = {o["name"]: o for o in metadata.outputs(operation)}
    assert len(declared) == len(metadata.outputs(operation))  # no name twice
    served = operation_of(engine, operation)
    results = served.run([served.parse(fields) for fields in REQUESTS[operation]], Channel())
    answers = [answer_of(result, served.provenance) for result in results]
    assert [a.status for a in answers] == [200] * len(answers)
    seen = set()
    for answer in answers:
        for output in answer_outputs(operation, answer.content_type, answer.body):
            assert output.name in declared, output.name
            assert declared[output.name]["datatype"] == output.datatype, output.name
            assert fits(list(output.array.shape), declared[output.name]["shape"]), output.name
            seen.add(output.name)
    assert {"image", "json"} & seen


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_every_field_is_an_input_of_its_kind(operation):
    inputs = {i["name"]: i for i in metadata.inputs(operation)}
    for field in OPERATIONS[operation].fields:
        assert inputs[field.name] == {"name": field.name, "datatype": metadata.DATATYPES[field.kind], "shape": [1]}
    if OPERATIONS[operation].body_is_image:
        assert inputs["data"] == {"name": "data", "datatype": "UINT8", "shape": [-1, -1, 3]}
    assert set(inputs) == {f.name for f in OPERATIONS[operation].fields} | (
        {"data"} if OPERATIONS[operation].body_is_image else set()) | (
        {"filters"} if operation == "visualize" else set())
