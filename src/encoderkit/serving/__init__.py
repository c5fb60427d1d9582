"""encoderkit.serving: the HTTP server (`encoderkit serve`) around one Predictor."""
