"""Call a featureviz endpoint over HTTP with a JSON body; `--stream` shows visualize's progress.

    python -m scripts.http_client visualize layer=40 filter=286 --stream -o filter286.png
    python -m scripts.http_client visualize layer=7 filter=3 --url http://127.0.0.1:8090 --key-file .api_key

Each name=value becomes a JSON field (a value that reads as JSON is sent as such: 7, true, [3, 5]).
The key comes from key_file.json (TorchServe's inference key) or a plain key file (.api_key).
"""
import argparse
import json
import os
import sys

import requests

from scripts.grpc_client import write_answer
from serving import ROOT
from serving.client import inference_key
from serving.progress import StreamFailed, follow


REFUSED = (400, 413, 507)  # the server's refusals of one request, naming the field (docs/api.md, "Status codes")


class Stop(RuntimeError):
    """A call that cannot succeed; the message says what was asked of which server, and why."""


class Endpoint:
    """A featureviz server's inference address and key: POST to its models."""

    def __init__(self, url: str, key: str | None, timeout: float = 3600):
        self.url, self.timeout = url.rstrip("/"), timeout
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def post(self, model: str, what: str | None = None, refusal_ok: bool = False, **kw) -> requests.Response:
        """requests.post's keywords (json, files, stream): the 200 answer, or with `refusal_ok` a refusal
        naming a field; anything else raises Stop, naming `what` was asked (the model), the server, the answer."""
        try:
            response = requests.post(f"{self.url}/predictions/{model}", headers=self.headers, timeout=self.timeout,
                                     **kw)
        except requests.ConnectionError as error:
            raise Stop(f"cannot reach the server at {self.url} ({type(error).__name__}); is it running?") from None
        try:
            body = response.json() if response.status_code != 200 else {}
        except ValueError:
            body = {"message": response.text[:300]}
        if response.status_code == 200 or refusal_ok and response.status_code in REFUSED and "field" in body:
            return response
        key = "; send its key with --key" if response.status_code in (401, 403) or "token" in str(body).lower() else ""
        raise Stop(f"{what or model}: {self.url} answered HTTP {response.status_code}: "
                   f"{body.get('message', body)}{key}")


def fields_of(pairs) -> dict:
    fields = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"error: {pair!r}: expected name=value")
        try:
            fields[name] = json.loads(value)
        except ValueError:
            fields[name] = value
    return fields


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("fields", nargs="*", help="name=value")
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--key-file", default=os.path.join(ROOT, "key_file.json"))
    parser.add_argument("--stream", action="store_true", help="visualize: progress events, then the PNG")
    parser.add_argument("-o", "--output", help="write the answer here (default: stdout)")
    args = parser.parse_args()
    fields = fields_of(args.fields)
    if args.stream:
        fields["stream"] = True
    try:
        response = Endpoint(args.url, inference_key(args.key_file)).post(args.model, json=fields, stream=args.stream)
    except RuntimeError as error:
        sys.exit(str(error))
    with response:
        if args.stream and response.headers.get("Content-Type") == "application/x-ndjson":
            try:
                body, done = follow(json.loads(line) for line in response.iter_lines() if line)
            except StreamFailed as error:
                sys.exit(f"error: {error}")
            print(json.dumps(done), file=sys.stderr)
        else:
            body = response.content
    write_answer(body, args.output)


if __name__ == "__main__":
    main()
