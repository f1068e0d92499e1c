"""The version of glazeish (one place; the package and its modules import it from here)."""

__version__ = "0.1.0"
