"""switchd.sim."""
