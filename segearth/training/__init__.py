"""Training SegEarth-R1: configuration files, data, initialisation, the accelerate loop."""
