"""Aggregating multirun folders into tables and figures (`oodmix-report`)."""
