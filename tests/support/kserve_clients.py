"""KServe's own clients (kserve.InferenceRESTClient, kserve.InferenceGRPCClient) calling a server,
in a process of their own: kserve and tritonclient.grpc register the same protobuf messages and
cannot be imported into one process (kserve/kserve#3099), and the test process has tritonclient.

    python -m tests.support.kserve_clients HTTP_ADDRESS GRPC_ADDRESS < calls.json > results.json

Each call: {"client": "rest" | "grpc" | "rest-v1", "model": name, "version": optional (gRPC),
"inputs": [[name, datatype, shape, data], ...] (BYTES data as base64 strings), "body": the v1 body,
"outputs": optional names to ask for}. Each result: {"outputs": {name: {"datatype", "shape",
"data"}}} (BYTES as base64 strings), {"predictions": [...]}, or {"error": {"status", "message"}}.
"""
import asyncio
import base64
import json
import sys

import grpc
import httpx
import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput


def request(call: dict) -> InferRequest:
    """BYTES go as bytes over gRPC, as text in REST's JSON (which carries no other bytes)."""
    inputs = []
    for name, datatype, shape, data in call["inputs"]:
        if datatype == "BYTES":
            data = [base64.b64decode(value) for value in data]
            data = data if call["client"] == "grpc" else [value.decode() for value in data]
        inputs.append(InferInput(name, shape, datatype, data))
    outputs = [RequestedOutput(name) for name in call["outputs"]] if call.get("outputs") else None
    return InferRequest(model_name=call["model"], infer_inputs=inputs, model_version=call.get("version"),
                        request_outputs=outputs)


def outputs(response) -> dict:
    found = {}
    for output in response.outputs:
        array = output.as_numpy()
        if output.datatype == "BYTES":
            data = [base64.b64encode(v if isinstance(v, bytes) else str(v).encode()).decode()
                    for v in array.reshape(-1)]
        else:
            data = array.tolist()
        found[output.name] = {"datatype": output.datatype, "shape": list(output.shape), "data": data}
    return {"outputs": found}


async def one(call: dict, http: str, grpc_address: str) -> dict:
    try:
        if call["client"] == "grpc":
            async with InferenceGRPCClient(grpc_address, timeout=300) as client:
                return outputs(await client.infer(request(call)))
        rest = InferenceRESTClient(RESTConfig(protocol="v1" if call["client"] == "rest-v1" else "v2", retries=0,
                                              timeout=300))
        try:
            if call["client"] == "rest-v1":
                return await rest.infer(f"http://{http}", call["body"], model_name=call["model"])
            return outputs(await rest.infer(f"http://{http}", request(call), model_name=call["model"]))
        finally:
            await rest.close()
    except httpx.HTTPStatusError as error:
        return {"error": {"status": error.response.status_code, "message": error.response.json().get("error")}}
    except grpc.aio.AioRpcError as error:
        return {"error": {"status": error.code().name, "message": error.details()}}


async def main():
    http, grpc_address = sys.argv[1:3]
    calls = json.load(sys.stdin)
    results = [await one(call, http, grpc_address) for call in calls]
    json.dump(results, sys.stdout,
              default=lambda value: value.tolist() if isinstance(value, np.ndarray) else str(value))


if __name__ == "__main__":
    asyncio.run(main())
