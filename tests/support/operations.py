"""An operation as the service's worker makes and runs it, without a handler or a service."""
import torch

from featureviz.service.channel import Channel
from featureviz.service.operations import OPERATIONS
from featureviz.service.provenance import Provenance
from featureviz.service.refusals import Refusal
from featureviz.service.settings import Settings

WEIGHTS = {"source": "random", "seed": 0, "trained": False, "sha256": "0" * 64}


def operation_of(engine, name, **settings):
    """The operation `name` over the model `engine`, configured with `settings` (no result cache)."""
    operation = OPERATIONS[name](engine, Provenance("1.0", WEIGHTS))
    operation.configure(Settings(settings, environ={}), torch.device("cpu"))
    return operation


def run_operation(engine, name, fields):
    """One request of an image or network operation, parsed and run as the service's worker does;
    a refusal is raised."""
    operation = operation_of(engine, name)
    result = operation.run([operation.parse(fields)], Channel())[0]
    if isinstance(result, Refusal):
        raise result
    return result
