"""The ``legato`` command."""
