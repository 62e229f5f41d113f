"""Hostile input (issue 6): corrupt and forged images, malformed 9P, killed makes, escaping extracts."""
