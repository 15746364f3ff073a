"""Operations: the admin HTTP listener (``/metrics``, ``/health``, ``/ready``, ``/stats``, the
dashboard) and the command latency sampler the connection feeds.

* :mod:`.latency`: the sampled per-command latency histograms (no dependency: the connection
  imports it);
* :mod:`.stats`: one snapshot of the server's numbers, read at request time, that ``/stats``
  serves as JSON and ``/metrics`` exposes;
* :mod:`.metrics`: the prometheus_client collector over that snapshot;
* :mod:`.http`: the small HTTP/1.1 GET server on the server's asyncio loop;
* :mod:`.dashboard`: the self-contained HTML page.

Nothing here is imported by the server unless ``admin-port`` is set, except :mod:`.latency`.
See docs/operations.md.
"""
