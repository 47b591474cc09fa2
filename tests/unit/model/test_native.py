"""Libraries built beforehand (the image's, FEATUREVIZ_NATIVE_PREBUILT): the loader takes the
highest x86-64 level the processor runs, before any compiler, and only for the same source."""
import subprocess

from featureviz.model import native

V3_FLAGS = "flags : fpu sse4_1 sse4_2 ssse3 popcnt cx16 lahf_lm pni avx avx2 bmi1 bmi2 f16c fma abm movbe xsave"


def test_the_levels_a_processor_runs_follow_its_flags():
    assert native.processor_levels(V3_FLAGS) == ["x86-64-v3", "x86-64-v2"]
    assert native.processor_levels(V3_FLAGS.replace(" avx2", "")) == ["x86-64-v2"]
    assert native.processor_levels("flags : fpu sse2") == []
    assert native.processor_levels(V3_FLAGS + " avx512f avx512bw avx512cd avx512dq avx512vl")[0] == "x86-64-v4"


def test_a_prebuilt_library_is_taken_at_the_highest_level_here(tmp_path, monkeypatch):
    digest = native.source_digest("pool_relu")
    levels = native.processor_levels()
    assert levels, "an x86-64-v2 processor at least"
    for level in ("x86-64-v2", "x86-64-v3", "x86-64-v4"):
        (tmp_path / f"pool_relu-{digest}-{level}.so").write_bytes(b"")
    (tmp_path / "pool_relu-0000000000000000-x86-64-v4.so").write_bytes(b"")  # another source's
    monkeypatch.setenv(native.PREBUILT, str(tmp_path))
    assert native.prebuilt("pool_relu") == str(tmp_path / f"pool_relu-{digest}-{levels[0]}.so")
    monkeypatch.setattr(native, "_compiler", lambda: None)
    assert native._build("pool_relu") == native.prebuilt("pool_relu")  # no compiler asked


def test_the_dockerfiles_name_is_the_loaders(tmp_path):
    """The Dockerfile names each library <name>-<sha256sum's first 16>-<level>.so."""
    out = subprocess.run(["sha256sum", f"{native.HERE}/pool_relu.c"], capture_output=True, text=True, check=True)
    assert out.stdout[:16] == native.source_digest("pool_relu")
