"""The workflow ``legato demo`` runs."""
