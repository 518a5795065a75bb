"""switchd.otp."""
