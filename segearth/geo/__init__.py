"""Geospatial input and output: GeoTIFFs, imagery for a drawn area, georeferenced masks and
polygons, the tiled mode for large rasters, and a run's result and files. No model code lives here."""
from .pipeline import SINGLE_PASS_MAX_SIZE, predict_geo
from .raster import GEOD, GeoImage, RasterFile, lonlat_transformer, read_raster
from .result import Result, write_record, write_result
from .tiled import predict_tiled
from .tiles import TileSource, fetch_area
from .vectors import mask_to_features, region_features, write_geojson, write_mask_geotiff

__all__ = ["GEOD", "SINGLE_PASS_MAX_SIZE", "GeoImage", "RasterFile", "Result", "TileSource",
           "fetch_area", "lonlat_transformer", "mask_to_features", "predict_geo", "predict_tiled",
           "read_raster", "region_features", "write_geojson", "write_mask_geotiff",
           "write_record", "write_result"]
