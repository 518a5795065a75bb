"""switchd.billing."""
