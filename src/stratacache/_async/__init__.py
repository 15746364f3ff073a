"""The async source of truth for everything that does I/O; ``_sync`` is generated from it."""
