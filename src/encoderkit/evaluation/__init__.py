"""encoderkit.evaluation."""
