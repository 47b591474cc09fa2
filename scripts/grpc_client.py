"""Call the featureviz endpoints over TorchServe's gRPC inference API.

    python -m scripts.grpc_client visualize layer=40 filter=286 -o filter286.png
    python -m scripts.grpc_client activations data=@arches.jpg layer=42
    python -m scripts.grpc_client visualize filter=3 --version 1.0 --address 127.0.0.1:7070
    python -m scripts.grpc_client visualize layer=40 filter=286 --stream -o filter286.png

Fields go in the request's input map as UTF-8 text; `name=@file` sends a file's bytes.
The token comes from key_file.json (`--key-file`; with `make serve-cluster`, `--key-file .api_key
--address 127.0.0.1:9070`) and travels as `authorization` metadata.
"""
import argparse
import json
import os
import sys

import grpc

from serving import ROOT
from serving.client import inference_key, predict, stream_predict
from serving.progress import StreamFailed, follow


def write_answer(body: bytes, path: str | None):
    """To the file at path, or to stdout."""
    if path:
        with open(path, "wb") as f:
            f.write(body)
    else:
        sys.stdout.buffer.write(body)


def parse_inputs(pairs):
    inputs = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"error: {pair!r}: expected name=value or name=@file")
        if value.startswith("@"):
            with open(value[1:], "rb") as f:
                inputs[name] = f.read()
        else:
            inputs[name] = value
    return inputs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="visualize, activations, deconv, saliency, gradcam, occlusion, layers or filters")
    parser.add_argument("fields", nargs="*", help="name=value or name=@file")
    parser.add_argument("--version", default="")
    parser.add_argument("--address", default="127.0.0.1:7070")
    parser.add_argument("--key-file", default=os.path.join(ROOT, "key_file.json"))
    parser.add_argument("--stream", action="store_true",
                        help="visualize: StreamPredictions with a progress bar, then the PNG")
    parser.add_argument("-o", "--output", help="write the prediction here (default: stdout)")
    args = parser.parse_args()
    inputs, key = parse_inputs(args.fields), inference_key(args.key_file)
    try:
        if args.stream:
            events = stream_predict(args.address, key, args.model, {**inputs, "stream": "true"}, args.version)
            prediction, done = follow(json.loads(message) for message in events)
            print(json.dumps(done), file=sys.stderr)
        else:
            prediction = predict(args.address, key, args.model, inputs, args.version)
    except grpc.RpcError as error:
        sys.exit(f"{error.code().name}: {error.details()}")
    except StreamFailed as error:
        sys.exit(f"error: {error}")
    write_answer(prediction, args.output)


if __name__ == "__main__":
    main()
