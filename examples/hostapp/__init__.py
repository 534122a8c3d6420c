"""Trackly: a tiny project tracker that gates its features on tiergate (tiergate_client.flask)."""

from examples.hostapp.app import create_hostapp

__all__ = ["create_hostapp"]
