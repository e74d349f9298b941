"""Training entry point and configuration files; the code is in `segearth.training`."""
