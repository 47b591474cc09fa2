"""Build model_store/featureviz.mar: the engine, the handler and the chosen weights in one archive.

    python scripts/build_archive.py --weights {imagenet|random|random:SEED|PATH} [--version 1.0]
                                    [--name featureviz]

Skips the build when the archive already holds the same weights choice, version and sources.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from featureviz import weights  # noqa: E402

HANDLER = os.path.join(ROOT, "handler", "featureviz_handler.py")
MODEL_CONFIG = os.path.join(ROOT, "handler", "model-config.yaml")
ENGINE = os.path.join(ROOT, "featureviz")
ARCHIVE_NAME = "featureviz"


def prepare_weights(choice: str, out_dir: str) -> dict:
    """Writes out_dir/vgg16_bn.pth; returns what the archive says about those weights."""
    target = os.path.join(out_dir, "vgg16_bn.pth")
    if choice == "random" or choice.startswith("random:"):
        seed = int(choice.partition(":")[2] or 0)
        import torch
        torch.save(weights.random_state_dict(seed), target)
        meta = {"source": "random", "seed": seed, "trained": False}
    elif choice == "imagenet":
        shutil.copyfile(weights.imagenet_file(), target)
        meta = {"source": "imagenet", "name": str(weights.IMAGENET), "trained": True}
    else:
        if not os.path.isfile(choice):
            raise weights.WeightsError(
                f"WEIGHTS={choice!r}: no such file; choose imagenet, random, or a path to a vgg16_bn state_dict")
        weights.load_state_dict(choice)  # refuse a wrong file now rather than at model load
        shutil.copyfile(choice, target)
        meta = {"source": "file", "path": os.path.abspath(choice), "trained": True}
    meta["sha256"] = weights.sha256(target)
    return meta


def sources_fingerprint(choice: str, version: str) -> str:
    digest = hashlib.sha256(f"{choice}\0{version}\0".encode())
    files = [HANDLER, MODEL_CONFIG] + sorted(
        os.path.join(ENGINE, f) for f in os.listdir(ENGINE) if f.endswith(".py"))
    for path in files:
        with open(path, "rb") as f:
            digest.update(path.encode() + b"\0" + f.read())
    if os.path.isfile(choice):
        digest.update(str(os.stat(choice).st_mtime_ns).encode())
    return digest.hexdigest()


def build(choice: str, version: str, export_path: str, name: str = ARCHIVE_NAME) -> str:
    archive = os.path.join(export_path, f"{name}.mar")
    stamp = archive + ".fingerprint"
    fingerprint = sources_fingerprint(choice, version)
    if os.path.exists(archive) and os.path.exists(stamp) and open(stamp).read() == fingerprint:
        print(f"{archive} is up to date (WEIGHTS={choice}, version {version})")
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
        subprocess.run([
            os.path.join(os.path.dirname(sys.executable), "torch-model-archiver"),
            "--model-name", name, "--version", version,
            "--handler", HANDLER, "--serialized-file", os.path.join(work, "vgg16_bn.pth"),
            "--extra-files", extra, "--config-file", MODEL_CONFIG,
            "--export-path", export_path, "--force",
        ], check=True)
    with open(stamp, "w") as f:
        f.write(fingerprint)
    print(f"built {archive} (WEIGHTS={choice}, version {version}, sha256 {meta['sha256'][:12]})")
    return archive


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=os.environ.get("WEIGHTS", "imagenet"))
    parser.add_argument("--version", default="1.0")
    parser.add_argument("--export-path", default=os.path.join(ROOT, "model_store"))
    parser.add_argument("--name", default=ARCHIVE_NAME, help="archive file name, without .mar")
    args = parser.parse_args()
    try:
        build(args.weights, args.version, args.export_path, args.name)
    except weights.WeightsError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
