"""The Dockerfiles and manifests as files: they parse, reference files that exist, and agree with
config.properties on ports, model names and versions (tests/deploy/test_container.py builds and runs the
images; tests/deploy/test_manifest_schemas.py validates the manifests against their schemas)."""
import json
import os
import re
import subprocess

import pytest
import yaml

from serving import torchserve
from tests.support import ROOT

pytestmark = pytest.mark.deploy

CONFIG = torchserve.read_properties(os.path.join(ROOT, "config.properties"))
CONTAINER_CONFIG = os.path.join(ROOT, "deploy", "config.properties")
MODELS = torchserve.registered_models(CONFIG)


def ports(props):
    found = {int(re.search(r":(\d+)$", props[key]).group(1))
             for key in ("inference_address", "management_address", "metrics_address")}
    return found | {int(props["grpc_inference_port"]), int(props["grpc_management_port"])}


def manifests(path):
    with open(os.path.join(ROOT, "deploy", path)) as f:
        return {doc["kind"]: doc for doc in yaml.safe_load_all(f) if doc}


def test_the_container_config_is_the_loopback_one_with_token_auth_off():
    """Behind the gateway (pod, make serve-cluster) TorchServe listens on loopback without tokens."""
    container = torchserve.read_properties(CONTAINER_CONFIG)
    assert ports(container) == ports(CONFIG) == {8080, 8081, 8082, 7070, 7071}
    for key, value in CONFIG.items():
        expected = "/home/model-server/model-store" if key == "model_store" else value
        assert container[key] == expected, key
    assert set(container) - set(CONFIG) == {"disable_token_authorization"}
    assert container["disable_token_authorization"] == "true"
    assert not torchserve.token_auth(container) and torchserve.token_auth(CONFIG)


def dockerfile_copies(text):
    return [source for line in re.findall(r"^COPY (?!--from)(?:--\S+ )*(.+) \S+$", text, re.M)
            for source in line.split()]


def test_the_dockerfile_builds_on_a_bookworm_base_with_requirements_txt_as_non_root():
    text = open(os.path.join(ROOT, "Dockerfile")).read()
    assert re.search(r"^ARG BASE=docker\.io/library/debian:bookworm-slim$", text, re.M)
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["${BASE}", "${BASE}"]  # the kernel's stage, the image
    assert "pip install --no-cache-dir --disable-pip-version-check -r $APP/requirements.txt" in text
    assert "COPY requirements.txt $APP/requirements.txt" in text
    assert re.findall(r"^USER (\S+)$", text, re.M) == ["1000:1000"]
    assert "ARG WEIGHTS=imagenet" in text and "archive.explicit_choice('$WEIGHTS')" in text
    for source in dockerfile_copies(text):
        assert os.path.exists(os.path.join(ROOT, source.rstrip("/").replace("*.c", ""))), source
    assert {int(p) for p in re.search(r"^EXPOSE (.+)$", text, re.M).group(1).split()} == ports(CONFIG)
    assert re.search(r'^ENTRYPOINT \["/usr/local/bin/featureviz-entrypoint"\]$', text, re.M)
    assert re.search(r'^CMD \["serve"\]$', text, re.M)
    for label in ("title", "licenses", "base.name"):
        assert f"org.opencontainers.image.{label}=" in text, label
    # What changes per build is labelled by `make image` (test_container checks the built image's).
    from serving.image import build_labels
    assert set(build_labels("featureviz:1.0", "hed")) == {"org.opencontainers.image.version",
                                                          "org.opencontainers.image.revision", "io.featureviz.weights"}
    assert build_labels("registry.example:5000/featureviz:2.1")["org.opencontainers.image.version"] == "2.1"


def test_the_gateway_image_is_debians_nginx_as_uid_101():
    text = open(os.path.join(ROOT, "deploy", "gateway", "Dockerfile")).read()
    assert "nginx-light gettext-base" in text and re.findall(r"^USER (\S+)$", text, re.M) == ["101:101"]
    for source in dockerfile_copies(text):
        assert os.path.exists(os.path.join(ROOT, source)), source


def test_the_kserve_runtime_runs_our_image_with_the_configs_paths():
    runtime = manifests("kserve/runtime.yaml")["ServingRuntime"]
    service = manifests("kserve/inferenceservice.yaml")["InferenceService"]
    deployment = manifests("k8s/featureviz.yaml")["Deployment"]
    assert service["spec"]["predictor"]["model"]["runtime"] == runtime["metadata"]["name"]
    assert {"name": "pytorch", "version": "1", "autoSelect": False} in runtime["spec"]["supportedModelFormats"]
    assert service["spec"]["predictor"]["model"]["protocolVersion"] in runtime["spec"]["protocolVersions"]
    (c,) = runtime["spec"]["containers"]
    assert c["name"] == "kserve-container"
    assert c["image"] == container(deployment["spec"]["template"], "torchserve")["image"]
    # The entrypoint's `serve`, then TorchServe's options for KServe's storage layout.
    entrypoint = open(os.path.join(ROOT, "deploy", "image", "entrypoint.sh")).read()
    assert c["args"][0] == "serve" and '"${1:-serve}" = serve' in entrypoint and 'exec torchserve --foreground' in entrypoint
    options = dict(arg.removeprefix("--").split("=", 1) for arg in c["args"][1:])
    assert options == {"model-store": "/mnt/models/model-store", "ts-config": "/mnt/models/config/config.properties"}
    env = {e["name"]: e["value"] for e in c["env"]}
    assert "TS_SERVICE_ENVELOPE" not in env  # the handler reads KServe's v1 body itself
    pod_env = {e["name"]: e["value"] for e in container(deployment["spec"]["template"], "torchserve")["env"]}
    assert env["FEATUREVIZ_PRECISION"] == pod_env["FEATUREVIZ_PRECISION"] == "tf32"  # named, as the GPU they ask for
    for store in ("v1", "v2"):
        props = torchserve.read_properties(os.path.join(ROOT, "deploy", "kserve", store, "config", "config.properties"))
        assert props["model_store"] == options["model-store"]
        assert props["inference_address"] == f"http://0.0.0.0:{c['ports'][0]['containerPort']}"
        assert runtime["spec"]["annotations"]["prometheus.kserve.io/port"] == props["metrics_address"].rsplit(":", 1)[1]
    probe = c["readinessProbe"]["exec"]["command"]
    assert probe[probe.index("--config") + 1] == options["ts-config"] and "--once" in probe


def test_the_kserve_predictors_runtime_runs_our_image_as_kserve_on_8080_and_8081():
    runtime = manifests("kserve/predictor-runtime.yaml")["ServingRuntime"]
    service = manifests("kserve/inferenceservice-predictor.yaml")["InferenceService"]
    deployment = manifests("k8s/featureviz.yaml")["Deployment"]
    model = service["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"] != manifests("kserve/runtime.yaml")["ServingRuntime"][
        "metadata"]["name"]
    assert set(runtime["spec"]["protocolVersions"]) == {"v1", "v2", "grpc-v2"}
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    assert {"name": "pytorch", "version": "1", "autoSelect": False} in runtime["spec"]["supportedModelFormats"]
    # the same name as TorchServe's InferenceService: auth.yaml's policies select either
    assert service["metadata"]["name"] == manifests("kserve/inferenceservice.yaml")["InferenceService"]["metadata"]["name"]
    assert model["storageUri"].endswith("/v1")  # model-store/featureviz.mar, version 1.0
    (c,) = runtime["spec"]["containers"]
    assert c["name"] == "kserve-container"
    assert c["image"] == container(deployment["spec"]["template"], "torchserve")["image"]
    entrypoint = open(os.path.join(ROOT, "deploy", "image", "entrypoint.sh")).read()
    assert c["args"][0] == "kserve" and '"$1" = kserve' in entrypoint and "python -m kserve_predictor" in entrypoint
    options = dict(arg.removeprefix("--").split("=", 1) for arg in c["args"][1:])
    assert options == {"archive": "/mnt/models/model-store", "host": "0.0.0.0", "http-port": "8080", "grpc-port": "8081"}
    assert [p["containerPort"] for p in c["ports"]] == [int(options["http-port"])]
    assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": int(options["http-port"])}
    assert runtime["spec"]["annotations"]["prometheus.kserve.io/port"] == options["http-port"]
    assert c["securityContext"]["runAsUser"] == 1000 and c["securityContext"]["runAsNonRoot"] is True
    torchserves = manifests("kserve/runtime.yaml")["ServingRuntime"]["spec"]["containers"][0]["env"]
    assert c["env"] == torchserves  # the same arithmetic as the TorchServe runtime's


def kustomization():
    with open(os.path.join(ROOT, "deploy", "kustomization.yaml")) as f:
        return yaml.safe_load(f)


def container(pod, name):
    return next(c for c in pod["spec"]["containers"] if c["name"] == name)


def mounted_file(c, volumes, path):
    """The volume (and file in it) that holds `path` in container c."""
    for mount in c["volumeMounts"]:
        if path == mount["mountPath"] or path.startswith(mount["mountPath"].rstrip("/") + "/"):
            rest = mount.get("subPath") or path[len(mount["mountPath"]):].lstrip("/")
            return volumes[mount["name"]], rest
    raise AssertionError(f"{c['name']} mounts nothing at {path}")


def test_the_kustomization_makes_the_config_maps_from_the_files():
    k = kustomization()
    assert k["resources"] == ["k8s/featureviz.yaml"]
    generated = {g["name"]: g["files"] for g in k["configMapGenerator"]}
    assert generated == {"featureviz-config": ["config.properties"],
                         "featureviz-gateway": ["gateway/nginx.conf.template", "gateway/entrypoint.sh",
                                                "gateway/readiness.py"]}
    for files in generated.values():
        for name in files:
            assert os.path.exists(os.path.join(ROOT, "deploy", name)), name


def test_kubernetes_manifests_agree_with_each_other_the_gateway_and_the_config():
    docs = manifests("k8s/featureviz.yaml")
    assert set(docs) == {"Deployment", "PersistentVolumeClaim", "Service", "HorizontalPodAutoscaler"}
    generated = {g["name"]: [os.path.basename(f) for f in g["files"]] for g in kustomization()["configMapGenerator"]}
    deployment = docs["Deployment"]
    pod = deployment["spec"]["template"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    for volume in volumes.values():
        if "configMap" in volume:
            assert volume["configMap"]["name"] in generated

    torchserve, readiness, gateway = (container(pod, n) for n in ("torchserve", "readiness", "gateway"))
    assert torchserve["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "ports" not in torchserve  # only the gateway is reached from outside the pod
    config_volume, config_file = mounted_file(torchserve, volumes, "/home/model-server/config.properties")
    assert (config_volume["configMap"]["name"], config_file) == ("featureviz-config", "config.properties")
    env = {e["name"]: e for e in torchserve["env"]}
    cache_volume, _ = mounted_file(torchserve, volumes, env["FEATUREVIZ_CACHE_DIR"]["value"])
    cache_claim = docs["PersistentVolumeClaim"]
    assert cache_volume["persistentVolumeClaim"]["claimName"] == cache_claim["metadata"]["name"]
    assert cache_claim["spec"]["accessModes"] == ["ReadWriteMany"]  # shared by every replica

    # The readiness check reads TorchServe's own config and listens where the gateway looks.
    command = readiness["command"]
    assert mounted_file(readiness, volumes, command[1])[1] == "readiness.py"
    assert command[command.index("--config") + 1] == "/home/model-server/config.properties"
    assert mounted_file(readiness, volumes, "/home/model-server/config.properties")[0] is config_volume
    assert command[command.index("--listen") + 1] == "127.0.0.1:8079"

    env = {e["name"]: e.get("value") for e in gateway["env"]}
    assert gateway["env"][0]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"  # X-Served-By
    assert mounted_file(gateway, volumes, gateway["command"][1])[1] == "entrypoint.sh"
    assert mounted_file(gateway, volumes, env["FEATUREVIZ_GATEWAY_TEMPLATE"])[1] == "nginx.conf.template"
    key_volume, key_file = mounted_file(gateway, volumes, env["FEATUREVIZ_API_KEY_FILE"])
    assert key_volume["secret"]["secretName"] == "featureviz-api-key" and key_file == "api-key"
    assert mounted_file(gateway, volumes, env["FEATUREVIZ_GATEWAY_PREFIX"])[0]["emptyDir"] == {}
    listens = {"http": env["FEATUREVIZ_HTTP_LISTEN"], "grpc": env["FEATUREVIZ_GRPC_LISTEN"],
               "metrics": env["FEATUREVIZ_METRICS_LISTEN"]}
    assert {p["name"]: str(p["containerPort"]) for p in gateway["ports"]} == listens
    for probe, path in (("startupProbe", "/ping"), ("readinessProbe", "/ping"), ("livenessProbe", "/live")):
        assert gateway[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == listens["metrics"]

    service = docs["Service"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} == set(listens)  # the gateway's ports only
    assert {p["port"] for p in service["spec"]["ports"]} == {int(v) for v in listens.values()}

    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["scaleTargetRef"]["kind"], hpa["scaleTargetRef"]["name"]) == ("Deployment", deployment["metadata"]["name"])
    with open(os.path.join(ROOT, "deploy", "k8s", "prometheus-adapter-rules.yaml")) as f:
        rule = yaml.safe_load(f)["rules"]["custom"][0]
    assert hpa["metrics"][0]["pods"]["metric"]["name"] == rule["name"]["as"]
    assert "ts_queue_latency_microseconds" in rule["seriesQuery"]


def test_the_pods_gateway_config_renders_and_passes_nginx_check(tmp_path):
    """The gateway container's environment through the real entrypoint, paths moved to tmp_path."""
    gateway = container(manifests("k8s/featureviz.yaml")["Deployment"]["spec"]["template"], "gateway")
    env = {e["name"]: e.get("value") for e in gateway["env"]}
    (tmp_path / "api-key").write_text("a-key_from.the+Secret/=\n")
    env.update(FEATUREVIZ_GATEWAY_NAME="featureviz-7d9f-abcde", FEATUREVIZ_API_KEY_FILE=str(tmp_path / "api-key"),
               FEATUREVIZ_GATEWAY_TEMPLATE=os.path.join(ROOT, "deploy", "gateway", "nginx.conf.template"),
               FEATUREVIZ_GATEWAY_PREFIX=str(tmp_path / "prefix"), FEATUREVIZ_GATEWAY_CHECK_ONLY="1")
    done = subprocess.run(["sh", os.path.join(ROOT, "deploy", "gateway", "entrypoint.sh")], capture_output=True,
                          text=True, env={"PATH": os.environ["PATH"] + ":/usr/sbin", **env}, timeout=60)
    assert done.returncode == 0, done.stderr
    conf = (tmp_path / "prefix" / "nginx.conf").read_text()
    assert not [line for line in conf.splitlines() if "${" in line and not line.lstrip().startswith("#")]
    for listen in ("8090;", "9070 http2;", "9082;"):
        assert f"listen {listen}" in conf
    for port in (8080, 8079, 8082):  # TorchServe, the readiness check, metrics: all this pod
        assert f"127.0.0.1:{port} featureviz-7d9f-abcde;" in conf
    assert (tmp_path / "prefix" / "api_key.map").read_text() == '"Bearer a-key_from.the+Secret/=" 1;\n'
    assert oct((tmp_path / "prefix" / "api_key.map").stat().st_mode & 0o777) == "0o600"


def test_the_gateway_refuses_a_key_it_cannot_quote(tmp_path):
    (tmp_path / "api-key").write_text('key"; default 1; "\n')
    done = subprocess.run(["sh", os.path.join(ROOT, "deploy", "gateway", "entrypoint.sh")], capture_output=True,
                          text=True, timeout=60, env={"PATH": os.environ["PATH"], "FEATUREVIZ_API_KEY_FILE":
                                                      str(tmp_path / "api-key"),
                                                      "FEATUREVIZ_GATEWAY_PREFIX": str(tmp_path / "prefix")})
    assert done.returncode == 2 and "API key" in done.stderr
    assert not (tmp_path / "prefix" / "api_key.map").exists()


def test_kserve_canary_serves_the_same_models_with_1_0_and_2_0():
    service = manifests("kserve/inferenceservice.yaml")["InferenceService"]
    predictor = service["spec"]["predictor"]
    makefile = open(os.path.join(ROOT, "Makefile")).read()
    assert predictor["canaryTrafficPercent"] == int(re.search(r"^AB_PERCENT \?= (\d+)$", makefile, re.M).group(1))
    assert predictor["model"]["modelFormat"]["name"] == "pytorch"
    assert predictor["model"]["storageUri"].endswith("/v2")
    assert "--version 2.0 --name featureviz_v2" in makefile
    configs = {store: torchserve.read_properties(os.path.join(ROOT, "deploy", "kserve", store, "config",
                                                              "config.properties")) for store in ("v1", "v2")}
    # 2.0's config is 1.0's, the tested one (tests/deploy/test_kserve.py), but for its snapshot's version.
    assert {k: v for k, v in configs["v2"].items() if k != "model_snapshot"} == \
        {k: v for k, v in configs["v1"].items() if k != "model_snapshot"}
    for store, version, archive in (("v1", "1.0", "featureviz.mar"), ("v2", "2.0", "featureviz_v2.mar")):
        props = configs[store]
        assert props["model_store"] == "/mnt/models/model-store"
        assert int(props["grpc_inference_port"]) == 7070 and props["metrics_address"].endswith(":8082")
        snapshot = json.loads(props["model_snapshot"])
        assert sorted(snapshot["models"]) == sorted(MODELS) and snapshot["modelCount"] == len(MODELS)
        model_config = yaml.safe_load(open(os.path.join(ROOT, "handler", "model-config.yaml")))
        for name in MODELS:
            entry = snapshot["models"][name][version]
            assert entry["marName"] == archive and entry["defaultVersion"] is True
            for key in ("batchSize", "maxBatchDelay", "responseTimeout", "minWorkers", "maxWorkers"):
                assert entry[key] == model_config[key], key


def test_kserve_authentication_selects_the_inference_service_pods():
    name = manifests("kserve/inferenceservice.yaml")["InferenceService"]["metadata"]["name"]
    docs = manifests("kserve/auth.yaml")
    assert set(docs) == {"RequestAuthentication", "AuthorizationPolicy"}
    for doc in docs.values():
        assert doc["spec"]["selector"]["matchLabels"] == {"serving.kserve.io/inferenceservice": name}
    rule = docs["AuthorizationPolicy"]["spec"]
    assert rule["action"] == "ALLOW" and rule["rules"] == [{"from": [{"source": {"requestPrincipals": ["*"]}}]}]
