"""python -m bench <section> [options]: each section is a module of this package with a
`main(argv)`; `python -m bench <section> --help` gives its options. A section's module is imported
only when it runs (the soak needs grpc and a cluster, the GPU sections a GPU)."""
import argparse
import importlib
import sys

SECTIONS = {  # name, which is also its module's: what it measures
    "cpu": "visualize against the seed article's loop (and lucent, a served TorchServe), on the CPU",
    "gpu": "visualize on a GPU: host syncs, repeatability, precisions, batches, sweeps, fixed groups",
    "gpu_check": "make gpu-check's one table: peers, one filter and a whole layer served, groups, CUDA tests",
    "kernel": "what the max-pool + ReLU C kernel saves on the CPU",
    "allocator": "what glibc's malloc settings cost visualize: seconds, page faults",
    "fidelity": "how close each precision's activation comes to strict fp32's",
    "batching": "does an image's input gradient depend on the batch it is computed in",
    "slots": "which module makes an image depend on its neighbours or slot in a group of G",
    "drawing": "param fft against lucent's render_vis and the pixel default",
    "png": "does Pillow's PNG encoder let a second thread work (a GPU worker encodes in threads)",
    "soak": "clients mixing every operation on make serve-cluster, one replica killed on the way",
    "memory": "each operation's worker in-process from its start, the soak's requests: resident memory, anonymous and file-backed",
    "fronts": "activations over TorchServe's HTTP and over the KServe predictor's OIP gRPC, side by side",
}


def section_parser(name: str, doc: str) -> argparse.ArgumentParser:
    """A section's parser: `python -m bench <name>`, its help the module's docstring."""
    return argparse.ArgumentParser(prog=f"python -m bench {name}", description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="The project's measurements, printed as Markdown tables.",
        epilog="sections:\n" + "\n".join(f"  {name:10} {about}" for name, about in SECTIONS.items())
        + "\n\npython -m bench <section> --help: that section's options",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("section", choices=SECTIONS, metavar="section", help="one of: " + ", ".join(SECTIONS))
    parser.add_argument("options", nargs=argparse.REMAINDER, help="the section's options")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    module = importlib.import_module(f"bench.{args.section}")
    return module.main(args.options)
