"""Sidecar-pattern helpers: containers that extend the main container of a pod."""
