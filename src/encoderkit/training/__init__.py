"""encoderkit.training."""
