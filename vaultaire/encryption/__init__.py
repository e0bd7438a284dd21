"""Encryption at rest: the sealed package format (keys and headers come with issue #15)."""
