"""Verifiers: score candidate answers (outcome) or their steps (process), in batches."""

from .base import Candidate, Question, Scores, Verifier, VerifierError, VerifierKind
from .loading import load_configured_verifiers
from .registry import DEFAULT_VERIFIERS, VERIFIERS, verifier_class

__all__ = [
    "DEFAULT_VERIFIERS",
    "VERIFIERS",
    "Candidate",
    "Question",
    "Scores",
    "Verifier",
    "VerifierError",
    "VerifierKind",
    "load_configured_verifiers",
    "verifier_class",
]
