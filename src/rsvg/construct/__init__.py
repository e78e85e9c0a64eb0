"""Automatic construction of a grounding dataset from detection boxes (paper Sec. III, steps 1-3) and its
analysis (Sec. III-B, Figs. 3 and 4).

Modules, one job each: :mod:`~.sampling` (step 1), :mod:`~.mask`, :mod:`~.color`, :mod:`~.geometry`,
:mod:`~.location` and :mod:`~.attributes` (step 2), :mod:`~.matching`, :mod:`~.expressions` and
:mod:`~.render` (step 3), :mod:`~.vocabulary` and :mod:`~.dior_rsvg_words` (the words written: only
DIOR-RSVG's), :mod:`~.parsing` (text back to attributes), :mod:`~.split`, :mod:`~.pipeline` and :mod:`~.build`
(the whole build), :mod:`~.stats` and :mod:`~.figures` (the analysis).
"""

from rsvg.construct.attributes import ObjectAttributes, SceneAttributes, extract_scene
from rsvg.construct.build import BuildSummary, benchmark_build, build_dataset
from rsvg.construct.expressions import Expression, ExpressionGenerator, generate_expression
from rsvg.construct.matching import ExpressionSpec, PhraseSpec, matches, matching_objects
from rsvg.construct.parsing import parse_expression
from rsvg.construct.sampling import SamplingResult, sample_objects
from rsvg.construct.split import split_indices
from rsvg.construct.stats import dataset_stats

__all__ = [
    "BuildSummary",
    "Expression",
    "ExpressionGenerator",
    "ExpressionSpec",
    "ObjectAttributes",
    "PhraseSpec",
    "SamplingResult",
    "SceneAttributes",
    "benchmark_build",
    "build_dataset",
    "dataset_stats",
    "extract_scene",
    "generate_expression",
    "matches",
    "matching_objects",
    "parse_expression",
    "sample_objects",
    "split_indices",
]
