"""encoderkit.inference."""
