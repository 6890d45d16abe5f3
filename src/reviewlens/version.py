"""This reviewlens' version: what every run, encoder and the service record."""

__version__ = "0.1.0"
