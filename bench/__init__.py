"""The measurements behind docs/performance.md and docs/reliability.md, one module per section,
all run as `python -m bench <section> [options]` (bench.cli)."""
