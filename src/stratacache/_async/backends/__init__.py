"""Backends: the small bytes/objects-level contract every storage engine implements."""
