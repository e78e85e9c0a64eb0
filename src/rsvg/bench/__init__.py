"""Benchmarks: the grounding model (``rsvg bench model``, :mod:`rsvg.bench.model_bench`, which runs the phases of
:mod:`rsvg.bench.floor_phase`, :mod:`rsvg.bench.timing_phases` and :mod:`rsvg.bench.data_phase`), the machine's
floor (:mod:`rsvg.bench.floor`), the review server under a team's load (``rsvg bench review``,
:mod:`rsvg.bench.review_bench` with the load of :mod:`rsvg.bench.review_load`) and what every result is printed
with (:mod:`rsvg.bench.machine`).

Nothing is imported here, so that ``rsvg --help`` does not pay for torch.
"""
