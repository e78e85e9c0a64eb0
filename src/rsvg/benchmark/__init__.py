"""``rsvg benchmark``: the paper's Table II on any dataset: every method trained and tested under one protocol
(:mod:`~rsvg.benchmark.rows` the rows, :mod:`~rsvg.benchmark.plan` what each runs, :mod:`~rsvg.benchmark.runner`
running them, :mod:`~rsvg.benchmark.table` the table)."""
