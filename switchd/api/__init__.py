"""switchd.api."""
