"""Training: known sources, approved-session data access, calibration fits, model registry."""
