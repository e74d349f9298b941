/*
 * The SegEarth map: Leaflet + Leaflet.draw inside a Gradio 6 `gr.HTML` component.
 *
 * Map -> Python: the drawn area (one rectangle or polygon) is written to `props.value` as a
 * GeoJSON Feature string in lon/lat, its `basemap` property the key of the imagery basemap on
 * screen, so it reaches Python as the component's value; a custom "draw" event says that the
 * user drew something.
 * Python -> map: the `layers` prop ({image, overlay, outlines, focus, fit}) and the `opacity` prop;
 * `outlines` is the regions' GeoJSON; the feature whose `rank` is `focus` (a row clicked in the
 * regions table) is drawn in the highlight style, and `fit` zooms to it;
 * `watch` re-renders them whenever Python changes them, without touching the basemap or the
 * drawing, so sliders feel instant.
 *
 * Loaded from `head=` after leaflet.js and leaflet.draw.js, all served by the app (no CDN).
 */
(function () {
  "use strict";

  const AREA_STYLE = { color: "#ffcc00", weight: 2, fill: false, className: "segearth-area" };
  const OUTLINE_STYLE = { color: "#00e5ff", weight: 2, fill: false, className: "segearth-outline" };
  const HIGHLIGHT_STYLE = { color: "#ffd400", weight: 4, fill: false, className: "segearth-highlight" };

  // The background layers; returns a function giving the key of the imagery basemap the
  // visitor has on screen (or last had, when a non-imagery one is shown): a run reads its pixels
  // from it.
  function addBasemaps(map, basemaps) {
    const layers = {};
    const keys = new Map();
    let imagery = (basemaps.find(function (b) { return b.imagery; }) || {}).key;
    basemaps.forEach(function (b, i) {
      const layer = L.tileLayer(b.url, {
        attribution: b.attribution,
        maxZoom: b.max_zoom,
        className: "segearth-basemap-" + b.key,
      });
      layers[b.name] = layer;
      keys.set(layer, b);
      if (i === 0) layer.addTo(map);
    });
    L.control.layers(layers, null, { collapsed: false, position: "topright" }).addTo(map);
    map.on("baselayerchange", function (e) {
      const b = keys.get(e.layer);
      if (b && b.imagery) imagery = b.key;
    });
    return function () { return imagery; };
  }

  function addDrawing(map, props, trigger, imageryKey) {
    const drawn = new L.FeatureGroup().addTo(map);
    map.addControl(new L.Control.Draw({
      position: "topleft",
      draw: {
        rectangle: { shapeOptions: AREA_STYLE },
        polygon: { shapeOptions: AREA_STYLE, allowIntersection: false, showArea: false },
        polyline: false, circle: false, circlemarker: false, marker: false,
      },
      edit: { featureGroup: drawn },
    }));
    function area() {
      const shapes = drawn.getLayers();
      if (!shapes.length) return "";
      return JSON.stringify({ type: "Feature", geometry: shapes[0].toGeoJSON().geometry,
                              properties: { basemap: imageryKey() } });
    }
    function publish() {
      props.value = area();
      trigger("draw", { drawn: props.value !== "" });
    }
    // Switching the imagery changes what a run would read, not what is drawn: no draw event.
    map.on("baselayerchange", function () { if (props.value) props.value = area(); });
    map.on(L.Draw.Event.CREATED, function (e) {
      drawn.clearLayers();  // one area at a time: the model answers about one image
      drawn.addLayer(e.layer);
      publish();
    });
    map.on(L.Draw.Event.EDITED, publish);
    map.on(L.Draw.Event.DELETED, publish);
  }

  function toBounds(b) {
    return L.latLngBounds(b);
  }

  function mount(element, props, trigger, watch) {
    const container = element.querySelector(".segearth-map");
    const map = L.map(container).setView(props.view.center, props.view.zoom);
    const imageryKey = addBasemaps(map, props.basemaps);
    addDrawing(map, props, trigger, imageryKey);

    const results = L.layerGroup().addTo(map);
    let overlay = null;
    // A map inside a hidden tab has no size, and fitting it then picks a nonsense zoom: keep
    // the bounds until the container is shown, and re-measure whenever its size changes.
    let pendingFit = null;
    function fit(bounds) {
      pendingFit = bounds;
      if (container.clientWidth > 0 && container.clientHeight > 0) {
        map.invalidateSize();
        map.fitBounds(pendingFit);
        pendingFit = null;
      }
    }
    new ResizeObserver(function () {
      map.invalidateSize();
      if (pendingFit) fit(pendingFit);
    }).observe(container);
    function render() {
      const spec = props.layers || {};
      results.clearLayers();
      overlay = null;
      if (spec.image) {
        L.imageOverlay(spec.image.url, toBounds(spec.image.bounds),
          { className: "segearth-image" }).addTo(results);
      }
      if (spec.overlay) {
        overlay = L.imageOverlay(spec.overlay.url, toBounds(spec.overlay.bounds),
          { className: "segearth-overlay", opacity: props.opacity }).addTo(results);
      }
      if (spec.outlines) {
        const outlines = L.geoJSON(spec.outlines, {
          style: function (feature) {
            return feature.properties.rank === spec.focus ? HIGHLIGHT_STYLE : OUTLINE_STYLE;
          },
        }).addTo(results);
        outlines.eachLayer(function (layer) {
          if (layer.feature.properties.rank === spec.focus) layer.bringToFront();
        });
      }
      if (spec.fit) fit(toBounds(spec.fit));
    }
    watch("layers", render);
    watch("opacity", function () { if (overlay) overlay.setOpacity(props.opacity); });
    render();
  }

  window.SegEarthMap = { mount: mount };
})();
