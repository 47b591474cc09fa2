"""A request's fields: where they come from (a JSON body, or named parts), typed fields with
defaults and limits, and clear errors that name them.

Values come as JSON (typed) or as text or bytes (form fields, a model server's named inputs).
"""
import json
import math
from dataclasses import dataclass
from typing import Any

from .refusals import BadRequest


REQUIRED = object()


def shown(raw, width: int = 40) -> str:
    """A value as an error message quotes it: short, and a JSON object or nested list by its kind
    alone (printing a deeply nested one would recurse as deep)."""
    if isinstance(raw, dict) or (isinstance(raw, list) and any(isinstance(v, (list, dict)) for v in raw)):
        return f"a JSON {'list' if isinstance(raw, list) else 'object'}"
    return repr(str(raw)[:width])


@dataclass(frozen=True)
class Field:
    name: str
    kind: type  # int, float, bool, or str (one of `choices`)
    default: Any = REQUIRED
    low: float | None = None
    high: float | None = None
    nullable: bool = False
    low_exclusive: bool = False
    choices: tuple = ()

    def accepted(self) -> str:
        if self.kind is bool:
            return "true or false"
        if self.kind is str:
            return "one of " + ", ".join(self.choices)
        kind = "an integer" if self.kind is int else "a number"
        low = "" if self.low is None else (f"> {self.low}" if self.low_exclusive else f">= {self.low}")
        high = "" if self.high is None else f"<= {self.high}"
        bounds = " and ".join(b for b in (low, high) if b)
        return kind + (f" {bounds}" if bounds else "") + (" or null" if self.nullable else "")

    def parse(self, raw):
        if isinstance(raw, (bytes, bytearray)):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest(self.name, f"not UTF-8 text; expected {self.accepted()}") from None
        if self.kind is str:
            return self._choice(raw)
        if self.kind is bool:
            return self._bool(raw)
        if isinstance(raw, str):
            raw = raw.strip()
            if self.nullable and raw.lower() in ("null", "none", ""):
                return None
            raw = self._from_text(raw)
        if raw is None:
            if self.nullable:
                return None
            raise BadRequest(self.name, f"null is not accepted; expected {self.accepted()}")
        value = self._typed(raw)
        too_low = self.low is not None and (value <= self.low if self.low_exclusive else value < self.low)
        if too_low or (self.high is not None and value > self.high):
            raise BadRequest(self.name, f"{value!r} is out of range; expected {self.accepted()}")
        return value

    def _choice(self, raw):
        if raw is None and self.nullable:
            return None
        value = raw.strip() if isinstance(raw, str) else raw
        if value not in self.choices:
            raise BadRequest(self.name, f"{shown(raw)} is not {self.accepted()}")
        return value

    def _bool(self, raw):
        if isinstance(raw, bool):
            return raw
        text = raw.strip().lower() if isinstance(raw, str) else None
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no", ""):
            return False
        raise BadRequest(self.name, f"{shown(raw)} is not {self.accepted()}")

    def _from_text(self, text):
        try:
            return int(text) if self.kind is int else float(text)
        except ValueError:
            raise BadRequest(self.name, f"{text[:40]!r} is not {self.accepted()}") from None

    def _typed(self, raw):
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise BadRequest(self.name, f"{shown(raw)} is not {self.accepted()}")
        if self.kind is int:
            if isinstance(raw, float):
                raise BadRequest(self.name, f"{raw!r} is not {self.accepted()}")
            return raw
        if not math.isfinite(raw):
            raise BadRequest(self.name, f"{raw!r} is not {self.accepted()}")
        return float(raw)


def parse_fields(fields: dict, specs: list[Field], ignore=()) -> dict:
    """Validate a request's fields against `specs`; unknown fields are refused."""
    known = {spec.name for spec in specs}
    unknown = sorted(set(fields) - known - set(ignore))
    if unknown:
        raise BadRequest(unknown[0], f"unknown field; accepted fields: {', '.join(sorted(known))}")
    values = {}
    for spec in specs:
        if spec.name in fields:
            values[spec.name] = spec.parse(fields[spec.name])
        elif spec.default is REQUIRED:
            raise BadRequest(spec.name, f"required; expected {spec.accepted()}")
        else:
            values[spec.name] = spec.default
    return values


def request_fields(body, parts: dict, body_is_image: bool) -> dict:
    """A request's fields from its body and its named parts (form fields, named inputs).

    The body is a JSON object already decoded, or raw bytes: an image for the operations that take
    one (it becomes the field `data`), JSON text for the others."""
    if body is None:
        return dict(parts)
    if isinstance(body, dict):
        return body
    if isinstance(body, str):
        body = body.encode("utf-8")
    if not isinstance(body, (bytes, bytearray)):
        raise BadRequest("body", f"expected a JSON object of fields, got JSON {type(body).__name__}")
    if body_is_image:
        return {**parts, "data": bytes(body)}
    if not body.strip():
        return dict(parts)
    try:
        fields = json.loads(body)
    except RecursionError:
        raise BadRequest("body", "JSON nested too deeply; send a flat JSON object of fields") from None
    except ValueError:
        raise BadRequest("body", "not valid JSON; send a JSON object of fields or form fields") from None
    if not isinstance(fields, dict):
        raise BadRequest("body", "expected a JSON object of fields")
    return fields


def json_by_default(body, parts: dict) -> tuple:
    """A request's body and named parts with `output: json` where it names no output (each
    instance's, for KServe's v1 body)."""
    if isinstance(body, dict) and isinstance(body.get("instances"), list):
        return {**body, "instances": [{"output": "json", **i} if isinstance(i, dict) else i
                                      for i in body["instances"]]}, parts
    if isinstance(body, dict):
        return {"output": "json", **body}, parts
    return body, {"output": b"json", **parts}
