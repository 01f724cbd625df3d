"""Figures (matplotlib's object API: no pyplot, no global backend)."""
