"""Integrations with web frameworks and observability tools.

Each module imports its framework at import time, so nothing here is imported by
``import stratacache``: import the module you use (``stratacache.contrib.django``,
``stratacache.contrib.flask``, ...) and install its extra (``pip install 'stratacache[django]'``).
"""
