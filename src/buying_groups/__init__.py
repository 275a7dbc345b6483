"""Buying-group intelligence: personas, buying roles, buying groups and their qualification."""

__version__ = "0.1.0"
