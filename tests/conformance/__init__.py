"""Conformance suite: the same attacks and faults through every entry point of the guard."""
