"""Traces (OpenTelemetry) and metrics (Prometheus) of runs and steps.

Both plug into the worker through its two hooks -- step middleware and the
engine's observer -- so the worker loop knows nothing about them, and with
neither configured nothing of this package runs at all.
"""
