"""Evaluation: Fréchet distances and a fast in-domain classifier."""

from ddpm.eval.domain_classifier import DomainClassifier, load_domain_classifier
from ddpm.eval.frechet import frechet_distance, gaussian_stats

__all__ = ["DomainClassifier", "frechet_distance", "gaussian_stats", "load_domain_classifier"]
