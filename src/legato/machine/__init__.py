"""The pure core: definitions, validation, runs and the transition function.

Nothing in this package does I/O or reads a clock; time comes in as an argument.
"""
