"""Each model's metadata: its inputs (the operation's fields, shape [1]; the image `data`) and the
outputs its answers may hold (kserve_predictor.tensors makes them), with datatypes and shapes; -1
is a size that varies."""
from featureviz.service.operations import OPERATIONS
from featureviz.service.uploads import IMAGE_FIELD

DATATYPES = {int: "INT64", float: "FP32", bool: "BOOL", str: "BYTES"}
# Fields an operation reads beyond its Field list: visualize's filter set, as text.
EXTRA_INPUTS = {"visualize": [("filters", "BYTES", 1)]}

PICTURE = [("image", "UINT8", -1, -1, 3), ("model_version", "BYTES", 1), ("weights", "BYTES", 1)]
NUMBERS = [("json", "BYTES", 1), ("model_version", "BYTES", 1)]
TARGET = [("target", "INT64", 1), ("probability", "FP32", 1)]
# What each operation's answers may hold, besides PICTURE (output png) or NUMBERS (output json).
OWN_OUTPUTS = {
    "visualize": [("zip", "BYTES", 1), ("layer", "INT64", 1), ("filter", "INT64", 1), ("filters", "BYTES", 1),
                  ("seed", "INT64", 1), ("activation_start", "FP32", 1), ("activation_final", "FP32", 1),
                  ("terms", "BYTES", 1), ("objective_value", "FP32", 1), ("precision", "BYTES", 1),
                  ("param", "BYTES", 1), ("decorrelate", "BYTES", 1), ("transforms", "BYTES", 1),
                  ("objective", "BYTES", 1), ("negative", "BYTES", 1), ("diversity", "INT64", 1),
                  ("diversity_weight", "FP32", 1)],
    "activations": [("activations", "FP32", -1), ("layer", "INT64", 1), ("channels", "INT64", 1)],
    "deconv": [("operation", "BYTES", 1), ("layer", "INT64", 1), ("filter", "INT64", 1), ("position", "INT64", 2),
               ("activation", "FP32", 1), ("space", "BYTES", 1), ("reconstruction", "FP32", 3, -1, -1)],
    "saliency": [("operation", "BYTES", 1), ("method", "BYTES", 1), ("steps", "INT64", 1), *TARGET,
                 ("saliency", "FP32", -1, -1)],
    "gradcam": [("operation", "BYTES", 1), ("layer", "INT64", 1), *TARGET, ("heatmap", "FP32", -1, -1)],
    "occlusion": [("operation", "BYTES", 1), ("window", "INT64", 1), ("stride", "INT64", 1), ("gray", "FP32", 1),
                  *TARGET, ("heatmap", "FP32", -1, -1)],
    "layers": [("operation", "BYTES", 1), ("input_size", "INT64", 1)],
    "filters": [("operation", "BYTES", 1), ("layer", "INT64", 1), ("filter", "INT64", 1), ("shape", "INT64", 4),
                ("kernels", "FP32", -1, -1, -1, -1)],
}


def tensor(name: str, datatype: str, *shape: int) -> dict:
    return {"name": name, "datatype": datatype, "shape": list(shape)}


def inputs(operation: str) -> list[dict]:
    found = [tensor(f.name, DATATYPES[f.kind], 1) for f in OPERATIONS[operation].fields]
    if OPERATIONS[operation].body_is_image:
        found.insert(0, tensor(IMAGE_FIELD, "UINT8", -1, -1, 3))
    return found + [tensor(*extra) for extra in EXTRA_INPUTS.get(operation, [])]


def outputs(operation: str) -> list[dict]:
    """activations answers JSON alone; the others a picture, or JSON (output json) or a zip."""
    common = NUMBERS if operation == "activations" else PICTURE + NUMBERS[:1]
    return [tensor(*output) for output in common + OWN_OUTPUTS[operation]]
