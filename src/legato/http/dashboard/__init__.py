"""``legato dashboard``: a web UI over runs, steps and dead letters, and its JSON API."""
