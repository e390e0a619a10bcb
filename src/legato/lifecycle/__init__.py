"""Data lifecycle: retention of finished runs, and their archive (docs/retention.md)."""
