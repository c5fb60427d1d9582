"""encoderkit.reporting."""
