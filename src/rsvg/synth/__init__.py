"""Synthetic top-down aerial scenes with all 20 DIOR categories, written as a DIOR/VOC detection dataset.

The project's built-in default data and test fixture generator: deterministic per seed, fast (tens of 800 x 800
images per second on one core), and with the true colour and shape of every object recorded, so the attribute
extraction and expression generation of the dataset construction pipeline can be checked against ground truth.

>>> scene = generate_scene(seed=7, size=256)
>>> scene.image.shape, scene.image.dtype.name
((256, 256, 3), 'uint8')
"""

from rsvg.synth.bench import benchmark_synth
from rsvg.synth.palette import COLOR_NAMES
from rsvg.synth.scene import SHAPES, Scene, SceneObject, generate_scene
from rsvg.synth.writer import SynthSummary, image_seed, write_synthetic_dataset

__all__ = [
    "COLOR_NAMES",
    "SHAPES",
    "Scene",
    "SceneObject",
    "SynthSummary",
    "benchmark_synth",
    "generate_scene",
    "image_seed",
    "write_synthetic_dataset",
]
