"""Ponder's core: what every layer shares and nothing of Ponder's own layers.

The engine protocol and its types, prompt rendering and fitting, answer extraction and
equivalence, and the input error. It imports nothing else of Ponder, so strategies, verifiers and
the server can all stand on it.
"""
