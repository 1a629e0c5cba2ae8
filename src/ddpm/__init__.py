"""Denoising diffusion probabilistic models and their family: train, sample, evaluate."""

__version__ = "0.1.0"
