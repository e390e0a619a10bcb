"""legato over HTTP: the worker's probes and metrics, and the dashboard."""
