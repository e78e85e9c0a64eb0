"""Data layer: detection (DIOR / Pascal-VOC) and grounding (DIOR-RSVG) readers, writers, checks, datasets."""
