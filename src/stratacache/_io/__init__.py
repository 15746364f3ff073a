"""Code that does I/O outside the async/sync backends: threads and on-disk storage.

``core/`` holds pure logic only (policies, protocol, accounting); the pieces here touch
threads, files or SQLite and are used by the backends and the memory store.
"""
