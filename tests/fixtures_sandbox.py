"""Fixtures that start the juhe sandbox as a real HTTP server (filled in with the sandbox)."""
