"""A request of an image or network operation as the service's worker runs it, without a handler."""
from types import SimpleNamespace

from featureviz.service.operations import OPERATIONS
from featureviz.service.refusals import Refusal


def run_operation(engine, operation, fields):
    """One request of an image or network operation, parsed and run as the service's worker does
    (those operations use nothing of the worker but its model); a refusal is raised."""
    spec = OPERATIONS[operation]
    result = spec.run(SimpleNamespace(model=engine), [spec.parse(fields, engine)])[0]
    if isinstance(result, Refusal):
        raise result
    return result

