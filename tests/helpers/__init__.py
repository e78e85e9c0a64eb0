"""Shared test helpers: tiny datasets, scenes and models the tests build on the fly."""
