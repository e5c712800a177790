"""Ponder's server: app factory, OpenAI protocol, serving layer, engine wrapper, metrics, CLI."""
