/*
 * The SegEarth map: Leaflet + Leaflet.draw inside a Gradio 6 `gr.HTML` component.
 *
 * Map -> Python: the drawn area (one rectangle or polygon) is written to `props.value` as a
 * GeoJSON Feature string in lon/lat, its `basemap` property the key of the imagery basemap on
 * screen, so it reaches Python as the component's value; a custom "draw" event says that the
 * user drew something.
 * Python -> map: the `layers` prop ({seq, image, name, color, order, overlay, outlines, focus, fit,
 * others}), the `opacity` prop and the `colors` prop ({outline, highlight}); an update older
 * (`seq`) than the one on screen is ignored; `overlay` and `outlines` (the regions' GeoJSON)
 * belong to the question the page shows, named `name`; the feature whose `rank` is `focus` (a
 * row clicked in the regions table) is drawn in the highlight style, and `fit` zooms to it;
 * `others` are the other questions about the place ({name, color, order, overlay, outlines}),
 * under it. Each question is one layer in the layer switch, in asking order (`order`) with its
 * colour, and stays hidden across updates once the visitor hides it, unless it is the one shown;
 * `watch` re-renders them whenever Python changes them, without touching the basemap or the
 * drawing, so sliders feel instant.
 *
 * Loaded from `head=` after leaflet.js and leaflet.draw.js, all served by the app (no CDN).
 */
(function () {
  "use strict";

  const AREA_STYLE = { color: "#ffcc00", weight: 2, fill: false, className: "segearth-area" };
  // the shown question's region outlines, in the `colors` prop's colours
  const OUTLINE_STYLE = { weight: 2, fill: false, className: "segearth-outline" };
  const HIGHLIGHT_STYLE = { weight: 4, fill: false, className: "segearth-highlight" };

  // The background layers; returns a function giving the key of the imagery basemap the
  // visitor has on screen (or last had, when a non-imagery one is shown): a run reads its pixels
  // from it.
  function addBasemaps(map, basemaps, control) {
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
    Object.keys(layers).forEach(function (name) { control.addBaseLayer(layers[name], name); });
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

  // The question as the layer switch names it: a swatch of its colour, then its text (the
  // visitor's own words: escaped, never markup).
  function questionLabel(name, color) {
    const text = document.createElement("span");
    text.textContent = name || "";
    return '<span class="segearth-swatch" style="background:' + color + '"></span>' +
      '<span class="segearth-question">' + text.innerHTML + "</span>";
  }

  function mount(element, props, trigger, watch) {
    const container = element.querySelector(".segearth-map");
    const map = L.map(container).setView(props.view.center, props.view.zoom);
    // questions listed in asking order (`order`), whichever is drawn on top; basemaps as given
    const control = L.control.layers(null, null, {
      collapsed: false, position: "topright", sortLayers: true,
      sortFunction: function (a, b) { return (a.segearthOrder || 0) - (b.segearthOrder || 0); },
    }).addTo(map);
    const imageryKey = addBasemaps(map, props.basemaps, control);
    addDrawing(map, props, trigger, imageryKey);

    const results = L.layerGroup().addTo(map);
    const outlineStyle = Object.assign({ color: props.colors.outline }, OUTLINE_STYLE);
    const highlightStyle = Object.assign({ color: props.colors.highlight }, HIGHLIGHT_STYLE);
    // The upload's imagery under the results; kept while its url and bounds stay the same, so
    // a slider, a focus or an answer arriving re-renders the results without reloading it.
    let backdrop = null;
    let seq = -Infinity;  // the newest update rendered (the server stamps them in order)
    let overlays = [];
    let questions = [];  // the question layers now in the layer switch
    const hidden = new Set();  // names of the questions the visitor switched off
    map.on("overlayremove", function (e) { hidden.add(e.layer.segearthName); });
    map.on("overlayadd", function (e) { hidden.delete(e.layer.segearthName); });
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
    // One question's layer: its mask, then its outlines; `shown` is the question the page shows
    // (outlines in the outline style, the focused region highlighted), the others in their colour.
    function questionLayer(question, shown, focus) {
      const group = L.layerGroup();
      group.segearthName = question.name;
      group.segearthOrder = question.order;
      if (question.overlay) {
        const overlay = L.imageOverlay(question.overlay.url, toBounds(question.overlay.bounds), {
          className: shown ? "segearth-overlay" : "segearth-question-overlay",
          opacity: props.opacity,
        }).addTo(group);
        overlays.push(overlay);
      }
      if (question.outlines) {
        const other = { color: question.color, weight: 2, fill: false,
                        className: "segearth-question-outline" };
        const outlines = L.geoJSON(question.outlines, {
          style: function (feature) {
            if (!shown) return other;
            return feature.properties.rank === focus ? highlightStyle : outlineStyle;
          },
        }).addTo(group);
        outlines.eachLayer(function (layer) {
          if (shown && layer.feature.properties.rank === focus) layer.bringToFront();
        });
      }
      if (shown) hidden.delete(question.name);  // the question picked is always on the map
      control.addOverlay(group, questionLabel(question.name, question.color));
      questions.push(group);
      if (!hidden.has(question.name)) group.addTo(results);
    }
    function showBackdrop(image) {
      const bounds = image ? JSON.stringify(image.bounds) : null;
      if (backdrop && image && backdrop.segearthUrl === image.url &&
          backdrop.segearthBounds === bounds) return;
      if (backdrop) results.removeLayer(backdrop);
      backdrop = null;
      if (!image) return;
      backdrop = L.imageOverlay(image.url, toBounds(image.bounds), { className: "segearth-image" });
      backdrop.segearthUrl = image.url;
      backdrop.segearthBounds = bounds;
      backdrop.addTo(results).bringToBack();  // under the masks and their outlines
    }
    function render() {
      const spec = props.layers || {};
      if (typeof spec.seq === "number") {
        if (spec.seq < seq) return;  // an older update that Gradio applied late
        seq = spec.seq;
      }
      // out of the switch first: a layer removed while in it would count as switched off
      questions.forEach(function (group) {
        control.removeLayer(group);
        results.removeLayer(group);
      });
      questions = [];
      overlays = [];
      showBackdrop(spec.image);
      (spec.others || []).forEach(function (question) { questionLayer(question, false, null); });
      if (spec.overlay || spec.outlines) questionLayer(spec, true, spec.focus);
      if (spec.fit) fit(toBounds(spec.fit));
    }
    watch("layers", render);
    watch("opacity", function () {
      overlays.forEach(function (overlay) { overlay.setOpacity(props.opacity); });
    });
    render();
  }

  window.SegEarthMap = { mount: mount };
})();
