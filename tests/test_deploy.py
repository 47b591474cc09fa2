"""Dockerfile and manifests cannot run here (no Docker engine, no cluster): check that they parse,
reference files that exist, and agree with config.properties on ports, model names and versions."""
import json
import os
import re

import yaml

from scripts import server
from conftest import ROOT

CONFIG = server.read_properties(os.path.join(ROOT, "config.properties"))
CONTAINER_CONFIG = os.path.join(ROOT, "deploy", "config.properties")
MODELS = server.registered_models(CONFIG)


def ports(props):
    found = {int(re.search(r":(\d+)$", props[key]).group(1))
             for key in ("inference_address", "management_address", "metrics_address")}
    return found | {int(props["grpc_inference_port"]), int(props["grpc_management_port"])}


def manifests(path):
    with open(os.path.join(ROOT, "deploy", path)) as f:
        return {doc["kind"]: doc for doc in yaml.safe_load_all(f) if doc}


def test_the_container_config_is_the_loopback_one_on_all_interfaces():
    container = server.read_properties(CONTAINER_CONFIG)
    assert ports(container) == ports(CONFIG) == {8080, 8081, 8082, 7070, 7071}
    for key, value in CONFIG.items():
        expected = value.replace("127.0.0.1", "0.0.0.0")
        if key == "model_store":
            expected = "/home/model-server/model-store"
        assert container[key] == expected, key
    assert set(container) == set(CONFIG)


def test_dockerfile_follows_the_torchserve_image_and_copies_files_that_exist():
    text = open(os.path.join(ROOT, "Dockerfile")).read()
    requirements = open(os.path.join(ROOT, "requirements.txt")).read()
    version = re.search(r"^torchserve==(\S+)$", requirements, re.M).group(1)
    assert f"ARG TORCHSERVE_VERSION={version}" in text
    assert "FROM pytorch/torchserve:${TORCHSERVE_VERSION}-${FLAVOR}" in text and "ARG FLAVOR=gpu" in text
    assert re.findall(r"^USER (\S+)$", text, re.M)[-1] == "model-server"  # runs as non-root
    for source in re.findall(r"^COPY (?:--\S+ )*(\S+) \S+$", text, re.M):
        assert os.path.exists(os.path.join(ROOT, source)), source
    assert {int(p) for p in re.search(r"^EXPOSE (.+)$", text, re.M).group(1).split()} == ports(CONFIG)


def test_kubernetes_manifests_agree_with_each_other_and_the_config():
    docs = manifests("k8s/featureviz.yaml")
    assert set(docs) == {"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler"}
    config_text = docs["ConfigMap"]["data"]["config.properties"]
    in_map = dict(line.split("=", 1) for line in config_text.splitlines() if line and not line.startswith("#"))
    assert in_map == server.read_properties(CONTAINER_CONFIG)

    deployment = docs["Deployment"]
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert {p["containerPort"] for p in container["ports"]} == ports(CONFIG)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/home/model-server/model-store", "/home/model-server/config.properties"} <= mounts
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()

    service = docs["Service"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert {p["port"] for p in service["spec"]["ports"]} == ports(CONFIG)
    assert {p["targetPort"] for p in service["spec"]["ports"]} == ports(CONFIG)

    target = docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])


def test_kserve_canary_serves_the_same_models_with_1_0_and_2_0():
    service = manifests("kserve/inferenceservice.yaml")["InferenceService"]
    predictor = service["spec"]["predictor"]
    makefile = open(os.path.join(ROOT, "Makefile")).read()
    assert predictor["canaryTrafficPercent"] == int(re.search(r"^AB_PERCENT \?= (\d+)$", makefile, re.M).group(1))
    assert predictor["model"]["modelFormat"]["name"] == "pytorch"
    assert predictor["model"]["storageUri"].endswith("/v2")
    assert "--version 2.0 --name featureviz_v2" in makefile
    for store, version, archive in (("v1", "1.0", "featureviz.mar"), ("v2", "2.0", "featureviz_v2.mar")):
        props = server.read_properties(os.path.join(ROOT, "deploy", "kserve", store, "config", "config.properties"))
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
