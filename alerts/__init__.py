"""xRocket alerts: market and account alerts for the xRocket exchange."""

__version__ = "0.1.0"
