"""Geospatial input and output: GeoTIFFs, imagery for a drawn area, georeferenced masks and
polygons, and the tiled mode for large rasters. No model code lives here."""
from .pipeline import predict_geo
from .raster import GeoImage, RasterFile, read_raster
from .tiled import predict_tiled
from .tiles import TileSource, fetch_area
from .vectors import mask_to_features, write_geojson, write_mask_geotiff

__all__ = ["GeoImage", "RasterFile", "TileSource", "fetch_area", "mask_to_features",
           "predict_geo", "predict_tiled", "read_raster", "write_geojson", "write_mask_geotiff"]
