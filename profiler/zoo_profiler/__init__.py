"""Profiler plugin; implementation in progress."""
