"""The on-disk result cache."""
import os
import time

from featureviz.service.cache import ResultCache, cache_key


def test_put_then_get_returns_the_bytes(tmp_path):
    cache = ResultCache(str(tmp_path), 1000)
    key = cache_key(layer=7, filter=1)
    assert cache.get(key) is None
    cache.put(key, b"png bytes")
    assert cache.get(key) == b"png bytes"
    assert ResultCache(str(tmp_path), 1000).get(key) == b"png bytes"  # another worker sees it
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_every_part_changes_the_key():
    base = dict(weights="abc", device="cpu", layer=7, filter=1, seed=0, lr=0.1, blur=5)
    keys = {cache_key(**base)}
    for name, other in (("weights", "abd"), ("device", "cuda"), ("layer", 8), ("filter", 2),
                        ("seed", 1), ("lr", 0.2), ("blur", None)):
        keys.add(cache_key(**{**base, name: other}))
    assert len(keys) == 8
    assert cache_key(a=1, b=2) == cache_key(b=2, a=1)


def test_size_is_bounded_and_the_least_recently_used_go_first(tmp_path):
    cache = ResultCache(str(tmp_path), 250)
    for i in range(3):
        cache.put(f"k{i}", bytes(100))
        os.utime(tmp_path / f"k{i}.bin", (time.time() - 100 + i, time.time() - 100 + i))
    assert cache.get("k0") is None  # 300 bytes > 250: the oldest went
    assert cache.get("k1") is not None  # and is now the most recently used
    cache.put("k3", bytes(100))
    assert cache.get("k2") is None and cache.get("k1") is not None and cache.get("k3") is not None
    assert sum(f.stat().st_size for f in tmp_path.iterdir()) <= 250


def test_an_entry_larger_than_the_cache_is_not_kept(tmp_path):
    cache = ResultCache(str(tmp_path), 10)
    cache.put("big", bytes(11))
    assert cache.get("big") is None


def test_a_cache_that_cannot_write_or_read_makes_misses_not_failures(tmp_path, monkeypatch, caplog):
    cache = ResultCache(str(tmp_path), 1000)
    key = cache_key(layer=7, filter=3)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")
    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", full_disk)
        assert cache.put(key, b"png bytes") is False
    assert "could not be saved" in caplog.text and "No space left" in caplog.text
    assert os.listdir(tmp_path) == [] and cache.get(key) is None  # no temp file left behind
    os.mkdir(cache._path(key))  # something unreadable where the entry would be
    assert cache.get(key) is None and "could not be read" in caplog.text
