"""switchd.sip."""
