"""What the tests share: the repository's root and the suite's constants. The helpers are in this
package's modules: images (test pictures), reference (independent computations), operations (a
request as the service's worker runs it), handler (the TorchServe handler with a context, no server),
caffe_reference (an independent numpy VGG-16 in Keras' convention), oip (Open Inference Protocol
requests and TorchServe's answers to compare), kserve_clients (KServe's clients, run as a process)."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TINY = {"size": 16, "upscaling_steps": 2, "opt_steps": 2}  # a visualize that takes well under a second


# visualize registered once more on the suite's server with gRPC progress on (conftest.py).
GRPC_STREAM_VERSION = "1.0-grpc-stream"

