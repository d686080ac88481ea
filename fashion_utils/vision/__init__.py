"""Seeing images: the pretrained backbones, the feature store (each image through a model
once), classifier heads and end-to-end models (notebook 03, and below every later one)."""
