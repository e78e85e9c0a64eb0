"""Benchmarks of the grounding model: ``rsvg bench model`` (:mod:`rsvg.bench.model_bench`), the machine's
floor (:mod:`rsvg.bench.floor`) and what every result is printed with (:mod:`rsvg.bench.machine`).

Nothing is imported here, so that ``rsvg --help`` does not pay for torch.
"""
