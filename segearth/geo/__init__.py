"""Geospatial input and output only: GeoTIFFs read whole or window by window, imagery fetched for
a drawn area, georeferenced masks and polygons written out. No model code and no run lives here:
running the model over a raster or an area is `segearth.pipelines`, a run's result
`segearth.result`."""
from .raster import GEOD, GeoImage, RasterFile, lonlat_transformer, read_raster
from .tiles import TileSource, fetch_area
from .vectors import mask_to_features, region_features, write_geojson, write_mask_geotiff

__all__ = ["GEOD", "GeoImage", "RasterFile", "TileSource", "fetch_area", "lonlat_transformer",
           "mask_to_features", "read_raster", "region_features", "write_geojson",
           "write_mask_geotiff"]
