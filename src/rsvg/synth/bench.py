"""In-process speed measurement of the scene generator (generation and JPEG encoding, nothing on disk)."""

from __future__ import annotations

import time

import cv2

from rsvg.synth.scene import generate_scene
from rsvg.synth.writer import encode_jpeg, image_seed


def benchmark_synth(images: int = 50, size: int = 800, seed: int = 0) -> dict:
    """Time ``images`` scenes of ``size`` pixels on one core; returns images/s and the cost per image.

    OpenCV is held to one thread while measuring (numpy's element-wise work is single-threaded anyway), so the
    figure is the throughput of one worker process. One untimed scene warms caches first. ``images_per_s`` is
    wall-clock; ``cpu_images_per_s`` uses the process's CPU time, which other load on the machine barely moves.
    """
    if images < 1:
        raise ValueError(f"images must be at least 1, got {images}")
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        encode_jpeg(generate_scene(image_seed(seed, 0), size).image)
        generate = encode = 0.0
        objects = jpeg_bytes = 0
        start, cpu_start = time.perf_counter(), time.process_time()
        for k in range(1, images + 1):
            t0 = time.perf_counter()
            scene = generate_scene(image_seed(seed, k), size)
            t1 = time.perf_counter()
            jpeg_bytes += len(encode_jpeg(scene.image))
            t2 = time.perf_counter()
            generate += t1 - t0
            encode += t2 - t1
            objects += len(scene.objects)
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
    finally:
        cv2.setNumThreads(threads)
    return {
        "images": images,
        "size": size,
        "threads": 1,
        "seconds": seconds,
        "images_per_s": images / seconds,
        "cpu_seconds": cpu_seconds,
        "cpu_images_per_s": images / max(cpu_seconds, 1e-9),
        "generate_ms": 1000 * generate / images,
        "encode_ms": 1000 * encode / images,
        "objects_per_image": objects / images,
        "jpeg_kib_per_image": jpeg_bytes / images / 1024,
    }
