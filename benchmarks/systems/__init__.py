"""One adapter per system under test; each drives its system the way a user would."""
