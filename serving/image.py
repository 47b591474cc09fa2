"""Build the pod's images with whichever container engine this machine has (podman or docker).

    python -m serving image build [--weights random] [--image featureviz:1.0] [--gateway-image featureviz-gateway:1.0]
    python -m serving image engine        # prints the engine's name, or says what to install

The server image (Dockerfile) and the gateway's (deploy/gateway/Dockerfile) start from BASE, a
Debian bookworm. When BASE is not on this machine and no registry answers, it is made from
Debian's repository with debootstrap and tagged with BASE's name. With podman, the project's
deploy/containers.conf applies, and pip inside the build reaches what pip on this machine reaches:
its configuration files, the wheel folders under /opt and the CA bundle are mounted read-only.
Layers are cached by the engine: a second build with the same sources takes seconds.
"""
import os
import shutil
import subprocess
import sys
import tempfile

from serving import ROOT

BASE = "docker.io/library/debian:bookworm-slim"
IMAGE = "featureviz:1.0"
GATEWAY_IMAGE = "featureviz-gateway:1.0"
CONTAINERS_CONF = os.path.join(ROOT, "deploy", "containers.conf")
NO_ENGINE = ("error: no container engine: install podman (Debian: apt-get install podman runc) or Docker "
             "(https://docs.docker.com/engine/install/)")
# What pip on this machine reads, mounted at the same place in the build when it exists.
PIP_MOUNTS = ["/opt", "/etc/pip.conf", "/etc/xdg/pip", os.path.expanduser("~/.config/pip"),
              os.path.expanduser("~/.pip"), "/etc/ssl/certs/ca-certificates.crt"]


def engine_or_none() -> str | None:
    """podman or docker (CONTAINER_ENGINE chooses when both exist)."""
    wanted = os.environ.get("CONTAINER_ENGINE")
    return next((name for name in ([wanted] if wanted else ["podman", "docker"]) if shutil.which(name)), None)


def engine() -> str:
    return engine_or_none() or sys.exit(NO_ENGINE)


def engine_env() -> dict:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", CONTAINERS_CONF)
    return env


def run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=engine_env(), **kw)


def image_exists(name: str) -> bool:
    tool = engine()
    check = [tool, "image", "exists", name] if tool == "podman" else [tool, "image", "inspect", name]
    return run(check, capture_output=True).returncode == 0


def debootstrap_base(name: str):
    """A Debian bookworm base from Debian's repository, imported as `name` (needs root and debootstrap)."""
    if not shutil.which("debootstrap") and not os.path.exists("/usr/sbin/debootstrap"):
        sys.exit("error: no registry answers and debootstrap is missing: apt-get install debootstrap")
    print(f"{name} is not on this machine and no registry answers: making it from Debian's repository "
          "with debootstrap (about a minute)", flush=True)
    with tempfile.TemporaryDirectory(prefix="featureviz-rootfs-") as rootfs:
        # ca-certificates now: a build later mounts the host's bundle over its file.
        subprocess.run(["debootstrap", "--variant=minbase", "--include=ca-certificates", "bookworm", rootfs,
                        "http://deb.debian.org/debian"], check=True, stdout=subprocess.DEVNULL)
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        run([engine(), "import", "-", name], stdin=tar.stdout, check=True, stdout=subprocess.DEVNULL)
        tar.stdout.close()
        if tar.wait():
            sys.exit("error: could not pack the debootstrap root")


def ensure_base(name: str = BASE, pull_timeout: float = 60):
    if image_exists(name):
        return
    try:
        pulled = run([engine(), "pull", name], capture_output=True, timeout=pull_timeout).returncode == 0
    except subprocess.TimeoutExpired:
        pulled = False
    if not pulled:
        debootstrap_base(name)


def revision() -> str:
    done = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def build_labels(tag: str, weights: str | None = None) -> dict:
    """The labels that change from build to build. They go on the command line, not in a Dockerfile's
    LABEL with an ARG: buildah's layer cache keys a LABEL on its text before the ARG is expanded, so a
    cached layer would keep an older revision."""
    name = tag.rsplit("/", 1)[-1]
    labels = {"org.opencontainers.image.version": name.partition(":")[2] or "latest",
              "org.opencontainers.image.revision": revision()}
    return labels | ({"io.featureviz.weights": weights} if weights else {})


def build_command(dockerfile: str, tag: str, build_args: dict, labels: dict) -> list[str]:
    tool = engine()
    command = [tool, "build", "-f", dockerfile, "-t", tag]
    for key, value in build_args.items():
        command += ["--build-arg", f"{key}={value}"]
    for key, value in labels.items():
        command += ["--label", f"{key}={value}"]
    if tool == "podman":
        command += ["--pull=never", "--network=host"]
        for path in PIP_MOUNTS:
            if os.path.exists(path):
                command += ["-v", f"{path}:{path}:ro"]
    return command + [ROOT]


def named_weights(choice: str) -> str:
    """The weights an image is built with, by name: `auto` (make's default) takes what `make serve`
    would take on this machine (serving.archive.auto_choice), and the image names it."""
    if choice != "auto":
        return choice
    from serving.archive import auto_choice
    return auto_choice(" for the image")[1]


def build(weights: str = "imagenet", image: str = IMAGE, gateway_image: str = GATEWAY_IMAGE, base: str = BASE):
    weights = named_weights(weights)
    ensure_base(base)
    builds = ((os.path.join(ROOT, "Dockerfile"), image, {"BASE": base, "WEIGHTS": weights}, build_labels(image, weights)),
              (os.path.join(ROOT, "deploy", "gateway", "Dockerfile"), gateway_image, {"BASE": base},
               build_labels(gateway_image)))
    for dockerfile, tag, build_args, labels in builds:
        print(f"building {tag} from {os.path.relpath(dockerfile, ROOT)}", flush=True)
        done = run(build_command(dockerfile, tag, build_args, labels))
        if done.returncode:
            sys.exit(f"error: building {tag} failed")


def add_commands(commands):
    command = commands.add_parser("image", help="the pod's images, with podman or docker")
    command.add_argument("action", choices=["build", "engine"])
    command.add_argument("--weights", default=os.environ.get("WEIGHTS") or "imagenet")
    command.add_argument("--image", default=os.environ.get("IMAGE") or IMAGE)
    command.add_argument("--gateway-image", default=os.environ.get("GATEWAY_IMAGE") or GATEWAY_IMAGE)
    command.add_argument("--base", default=os.environ.get("BASE") or BASE)
    command.set_defaults(run=run_command)


def run_command(args):
    if args.action == "engine":
        print(engine())
        return
    build(args.weights, args.image, args.gateway_image, args.base)
