"""switchd.switch."""
