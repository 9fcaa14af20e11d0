"""Helpers for tests and demos: tiny corpora with the layouts the recipes expect."""
