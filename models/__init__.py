"""Adapters of the engine's LLM port: each package talks to one kind of model server."""
