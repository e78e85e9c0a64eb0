"""Typer command functions; :mod:`rsvg.cli` registers them on the ``rsvg`` app."""
