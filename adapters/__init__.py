"""Adapter-pattern helpers: containers that normalise the app's output for the outside world."""
