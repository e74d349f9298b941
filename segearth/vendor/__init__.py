"""Leaflet, vendored from npm (see README.md here): the app serves it and every map file
(`segearth.maps`) inlines it, so no map ever loads code from a CDN and map files open offline."""
from pathlib import Path

LEAFLET_DIR = Path(__file__).resolve().parent / "leaflet"
