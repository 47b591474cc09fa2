"""The manifests against the schemas a cluster checks them with, offline: `kubectl kustomize
deploy/` (`make kubectl`'s kubectl, as `make serve-image` renders it) through kubernetes-validate --strict
for Kubernetes 1.30 and 1.33, and the KServe and Istio objects against their CustomResourceDefinitions in
tests/deploy/schemas/ (its README names each file's source), refusing fields the schemas do not name.
Each check is shown to fail on a manifest with one field misspelled."""
import copy
import functools
import os
import subprocess
import sys

import jsonschema
import pytest
import yaml

from serving import pod
from tests.support import ROOT

pytestmark = pytest.mark.deploy

SCHEMAS = os.path.join(ROOT, "tests", "deploy", "schemas")
KUBERNETES = ["1.30.0", "1.33.0"]
CRD_FILES = {"InferenceService": os.path.join(SCHEMAS, "kserve-inferenceservices-crd.yaml"),
             "ServingRuntime": os.path.join(SCHEMAS, "kserve-servingruntimes-crd.yaml"),
             "RequestAuthentication": os.path.join(SCHEMAS, "istio-security-crds.yaml"),
             "AuthorizationPolicy": os.path.join(SCHEMAS, "istio-security-crds.yaml")}
KSERVE_FILES = ["kserve/inferenceservice.yaml", "kserve/runtime.yaml", "kserve/auth.yaml",
                "kserve/inferenceservice-predictor.yaml", "kserve/predictor-runtime.yaml"]


@pytest.fixture(scope="module")
def rendered():
    return pod.render()


def kubernetes_validate(docs, path, version):
    with open(path, "w") as f:
        yaml.safe_dump_all(docs, f)
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), "kubernetes-validate"), "--strict",
                           "--kubernetes-version", version, path], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("version", KUBERNETES)
def test_the_rendered_manifests_pass_kubernetes_validate_strict(rendered, tmp_path, version):
    assert {doc["kind"] for doc in rendered} == {"ConfigMap", "Deployment", "Service", "PersistentVolumeClaim",
                                                 "HorizontalPodAutoscaler"}
    done = kubernetes_validate(rendered, str(tmp_path / "all.yaml"), version)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(" passed for resource ") == len(rendered)


@pytest.mark.parametrize("version", KUBERNETES)
def test_kubernetes_validate_refuses_a_misspelled_field(rendered, tmp_path, version):
    broken = copy.deepcopy(rendered)
    deployment = next(doc for doc in broken if doc["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["volumeMount"] = container.pop("volumeMounts")
    done = kubernetes_validate(broken, str(tmp_path / "broken.yaml"), version)
    assert done.returncode != 0 and "volumeMount" in done.stdout + done.stderr


def refuse_unknown_fields(schema):
    """An openAPIV3Schema as JSON Schema that refuses properties it does not name (as the API server
    prunes and `kubectl --validate=strict` refuses them), except where it preserves unknown fields."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(schema)
    return schema


@functools.cache
def crds(path):
    with open(path) as f:
        return [doc for doc in yaml.load_all(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) if doc]


@functools.cache
def crd_validator(kind, api_version):
    group, version = api_version.split("/")
    for crd in crds(CRD_FILES[kind]):
        if crd["kind"] == "CustomResourceDefinition" and crd["spec"]["group"] == group \
                and crd["spec"]["names"]["kind"] == kind:
            served = next(v for v in crd["spec"]["versions"] if v["name"] == version)
            schema = refuse_unknown_fields(served["schema"]["openAPIV3Schema"])
            # Every object has these, whether its CRD's schema names them or not.
            for field in ("apiVersion", "kind"):
                schema["properties"].setdefault(field, {"type": "string"})
            schema["properties"].setdefault("metadata", {"type": "object"})
            return jsonschema.Draft7Validator(schema)
    raise AssertionError(f"no CRD for {kind} {api_version} in {CRD_FILES[kind]}")


def crd_errors(doc):
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in crd_validator(doc["kind"], doc["apiVersion"]).iter_errors(doc)]


def kserve_docs():
    docs = []
    for name in KSERVE_FILES:
        with open(os.path.join(ROOT, "deploy", name)) as f:
            docs += [doc for doc in yaml.safe_load_all(f) if doc]
    return docs


@pytest.mark.parametrize("doc", kserve_docs(), ids=lambda doc: doc["kind"])
def test_kserve_and_istio_objects_pass_their_crds(doc):
    assert crd_errors(doc) == []


MISSPELT = {
    "InferenceService": ("spec", "predictor", "model", "runtime", "runtimeName"),
    "ServingRuntime": ("spec", "containers", 0, "args", "arguments"),
    "RequestAuthentication": ("spec", "jwtRules", 0, "issuer", "issuers"),
    "AuthorizationPolicy": ("spec", "action", "actions"),
}


@pytest.mark.parametrize("doc", kserve_docs(), ids=lambda doc: doc["kind"])
def test_a_misspelled_field_fails_its_crd(doc):
    broken = copy.deepcopy(doc)
    *path, field, wrong = MISSPELT[doc["kind"]]
    parent = broken
    for step in path:
        parent = parent[step]
    parent[wrong] = parent.pop(field)
    errors = crd_errors(broken)
    assert errors and any(f"'{wrong}' was unexpected" in e for e in errors), errors
