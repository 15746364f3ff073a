"""Pure logic with no I/O: glob matching, clocks, statistics and the in-memory store.

Everything here is synchronous, thread-safe where it says so, and shared by the sync and
async flavours of the backends (which only wrap it).
"""
