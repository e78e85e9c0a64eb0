"""Grounding models: visual backbones, text encoders, MGVLF and its ablations."""
