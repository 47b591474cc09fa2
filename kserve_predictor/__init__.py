"""The featureviz operations on KServe's own model server (kserve 0.21's ModelServer), over the
Open Inference Protocol v2 (REST and gRPC) and KServe's v1 protocol: the same Service as the
TorchServe handler (handler/), from the same archive.

    python -m kserve_predictor [--archive model_store/featureviz.mar ...] [--host 127.0.0.1]
                               [--http-port 8080] [--grpc-port 8081]

    model.py     the adapter: one kserve.Model per operation, tensors in, outputs and refusals out
    tensors.py   OIP tensors -> the service's fields; answers -> output tensors
    metadata.py  each model's inputs and outputs, with datatypes and shapes
    batches.py   TorchServe's batching (batchSize, maxBatchDelay), one batch at a time per model
    jobs.py      a batch of requests run by one Service (read, parse, run, respond; the memory ceiling)
    archives.py  a .mar unzipped as TorchServe does: weights, version, model-config.yaml
    server.py    KServe's server as this needs it (one host, versions, binary REST, errors)

`python -m serving kserve start|stop` runs it in the background (serving/kserve.py).
"""
