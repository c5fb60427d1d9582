"""encoderkit.data."""
