"""Two versions side by side: direct version URLs, set-default, and nginx's sticky weighted split."""
import collections

import pytest
import requests

from serving import ab, archive, nginx
from tests.support import TINY
from tests.support.images import png

pytestmark = pytest.mark.e2e

FIELDS = {"layer": 14, "filter": 7, **TINY}


@pytest.fixture(scope="module")
def proxy(served, api, tmp_path_factory):
    store = served["work"] / "model_store"
    archive.build("random:1", "2.0", str(store), name="featureviz_v2")
    ab.register_version(served["props"], str(served["work"]), "featureviz_v2.mar")
    prefix = str(tmp_path_factory.mktemp("nginx"))
    nginx.start(ab.nginx_conf(10, "127.0.0.1:18090", api.inference, prefix), prefix)
    try:
        yield "http://127.0.0.1:18090"
    finally:
        nginx.stop(prefix)


def test_each_version_is_reachable_directly(api, proxy):
    one = api.visualize(FIELDS, path="visualize/1.0")
    two = api.visualize(FIELDS, path="visualize/2.0")
    assert (one.headers["X-Model-Version"], two.headers["X-Model-Version"]) == ("1.0", "2.0")
    assert one.content != two.content  # other weights (random seed 1)
    body = requests.post(f"{api.inference}/predictions/activations/2.0", headers=api.auth,
                         files={"data": ("x.png", png(40, 40), "image/png")}, timeout=60).json()
    assert body["model_version"] == "2.0"


def test_the_proxy_sends_about_ten_percent_of_clients_to_2_0_and_each_stays(api, proxy):
    versions = collections.defaultdict(set)
    for client in range(100):
        for _ in range(2):
            response = requests.post(f"{proxy}/predictions/visualize", json=FIELDS, timeout=120,
                                     headers={**api.auth, "X-Client-Id": f"client-{client}"})
            assert response.status_code == 200
            versions[client].add(response.headers["X-Model-Version"])
    assert all(len(seen) == 1 for seen in versions.values())  # sticky
    on_two = sum(seen == {"2.0"} for seen in versions.values())
    assert 3 <= on_two <= 20, on_two


def test_an_explicit_version_passes_the_proxy_unchanged(api, proxy):
    for version in ("1.0", "2.0"):
        response = requests.post(f"{proxy}/predictions/visualize/{version}", json=FIELDS, timeout=120,
                                 headers={**api.auth, "X-Client-Id": "client-0"})
        assert response.headers["X-Model-Version"] == version


def test_set_default_switches_the_unversioned_url(api, proxy):
    def default_version():
        return api.visualize(FIELDS).headers["X-Model-Version"]

    assert default_version() == "1.0"
    try:
        switched = requests.put(f"{api.management}/models/visualize/2.0/set-default", headers=api.manage,
                                timeout=30)
        assert switched.status_code == 200
        assert default_version() == "2.0"
    finally:
        requests.put(f"{api.management}/models/visualize/1.0/set-default", headers=api.manage, timeout=30)
    assert default_version() == "1.0"
