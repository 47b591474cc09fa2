"""KServe's v1 prediction protocol: a body {"instances": [fields, ...]} answered with
{"predictions": [...]}, one prediction per instance, in order.

Each instance holds one request's fields as a JSON object; bytes (an image's `data`) come as
{"b64": "<base64>"}, as TensorFlow Serving and KServe clients send them. The instances of a body
run in the worker's batch like separate requests; a picture comes back as {"b64": ...,
"content_type": "image/png", ...}, a JSON answer as itself. A refused instance refuses the body,
naming `instances[i].<field>`: the client sent one request.
"""
import base64
import binascii
import json
from dataclasses import dataclass

from .refusals import BadRequest, InternalError, Refusal
from .answers import Answer

MAX_INSTANCES = 16


@dataclass(frozen=True)
class Instances:
    requests: list  # the operation's parsed requests, one per instance


def is_instances(body) -> bool:
    return isinstance(body, dict) and "instances" in body


def instance_fields(body: dict) -> list[dict]:
    """Each instance's fields, bytes decoded; raises BadRequest naming what is wrong."""
    unknown = sorted(set(body) - {"instances"})
    if unknown:
        raise BadRequest(unknown[0], "unknown key beside instances; send {\"instances\": [{fields}, ...]}")
    instances = body["instances"]
    if not isinstance(instances, list) or not instances or not all(isinstance(i, dict) for i in instances):
        raise BadRequest("instances", "expected a non-empty JSON list of objects of fields")
    if len(instances) > MAX_INSTANCES:
        raise BadRequest("instances", f"{len(instances)} instances; at most {MAX_INSTANCES} in one request")
    return [{name: _decoded(i, name, value) for name, value in fields.items()}
            for i, fields in enumerate(instances)]


def _decoded(i: int, name: str, value):
    if not (isinstance(value, dict) and set(value) == {"b64"}):
        return value
    try:
        return base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise BadRequest(f"instances[{i}].{name}", "b64 is not valid base64") from None


def of_instance(i: int, refusal: Refusal) -> Refusal:
    """The refusal of one instance as the body's refusal, naming the instance."""
    if isinstance(refusal, InternalError):
        return InternalError(f"instances[{i}]: {refusal.message}")
    return BadRequest(f"instances[{i}].{refusal.field}", refusal.message, refusal.status)


def prediction(a: Answer) -> dict:
    if a.content_type == "application/json":
        return json.loads(a.body)
    found = {"b64": base64.b64encode(a.body).decode(), "content_type": a.content_type,
             "model_version": a.headers.get("X-Model-Version")}
    if "X-Cache" in a.headers:
        found["cache"] = a.headers["X-Cache"]
    return found


def predictions(answers: list[Answer], headers: dict) -> Answer:
    """The instances' answers (each a success) as the body's one answer."""
    body = json.dumps({"predictions": [prediction(a) for a in answers]}).encode()
    return Answer(200, "application/json", body, headers)
