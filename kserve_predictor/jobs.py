"""A batch of the predictor's requests run by one Service, in the batch's thread. Each request is
a job: (read, respond, explanation): `read()` gives the service's body and named parts (or raises
the BadRequest that refuses it), `respond(answer)` makes the Answer the response KServe sends (or
raises the error KServe answers with), `explanation` says it came by :explain. No kserve import
(kserve_predictor.model passes KServe's side in)."""
import logging

from featureviz.service.instances import is_instances
from featureviz.service.refusals import BadRequest, InternalError

logger = logging.getLogger(__name__)


def run_jobs(services: dict, version: str, jobs: list) -> list:
    """Each job's outcome, (answer headers, response) or the exception that answers it: every
    request read and parsed, all run by the version's service together. Past the memory ceiling
    the service is built again once the batch is answered, as TorchServe's handler does (here the
    ceiling counts the whole process: every operation and version)."""
    service = services[version]
    parsed = []
    for read, _, explanation in jobs:
        try:
            body, parts = read()
            parsed.append(refuse_stream(service.parse_explanation(body, parts) if explanation
                                        else service.parse(body, parts)))
        except BadRequest as refusal:
            parsed.append(refusal)
        except Exception as error:
            logger.exception("%s: a request could not be read", service.operation.name)
            parsed.append(InternalError(f"the request could not be read ({type(error).__name__})"))
    batch = service.run(parsed)
    outcomes = []
    for (_, respond, _), answer in zip(jobs, batch.answers):
        try:
            outcomes.append((answer.headers, respond(answer)))
        except Exception as error:
            outcomes.append(error)
    if batch.restart:
        services[version] = service.rebuilt(batch.restart)
    return outcomes


def refuse_stream(request):
    """A parsed request, or the refusal of one that asks to stream: the protocol answers once."""
    if getattr(request, "stream", False):
        return BadRequest("stream", "the Open Inference Protocol answers once; send stream false (or no stream)")
    return request


def instances(payload):
    """KServe's v1 body, or the refusal of anything else."""
    if not is_instances(payload):
        raise BadRequest("instances", "KServe's v1 protocol sends {\"instances\": [{fields}, ...]}")
    return payload
