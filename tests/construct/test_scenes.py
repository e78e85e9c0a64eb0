"""The crafted scenes the construction tests draw are reproducible."""

import numpy as np

from helpers.scenes import random_scene


def test_random_scene_is_reproducible() -> None:
    a_img, a_obj = random_scene(3)
    b_img, b_obj = random_scene(3)
    assert np.array_equal(a_img, b_img) and a_obj == b_obj
    assert sum(c == "vehicle" for c, _ in a_obj) >= 2
