"""Fixtures shared by the test modules (plain helpers are in ``helpers.py``)."""
