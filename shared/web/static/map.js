/* streetneeds map: our own streets, wards and needs drawn with Leaflet; no tiles unless configured.
 *
 * <div id="map" data-base="…" data-layers="…geojson" [data-pick="formId"]>; the layers may name a
 * tile server (`basemap`), else the map is drawn from our own streets, wards and boundary only.
 * The page works without this script: every street and need on the map is also in the page's lists.
 * With data-pick, a click on the map (or "Use my location") fills the form's hidden lat/lon fields and
 * draws the circle the radius would follow; the resident never types coordinates.
 */
(function () {
  "use strict";
  var el = document.getElementById("map");
  if (!el || !window.L || !window.fetch) { return; }
  var base = el.dataset.base || "";
  // Colours with at least 3:1 contrast on the light map background, one per category in order seen.
  var PALETTE = ["#d4351c", "#1d70b8", "#00703c", "#912b88", "#b35900", "#28a197", "#5694ca", "#4c2c92"];
  var colours = {};
  var legend = document.getElementById("map-legend");

  function colourOf(props) {
    if (!(props.category in colours)) {
      colours[props.category] = PALETTE[Object.keys(colours).length % PALETTE.length];
      if (legend) {
        var li = document.createElement("li");
        var swatch = document.createElement("span");
        swatch.style.background = colours[props.category];
        swatch.setAttribute("aria-hidden", "true");
        li.appendChild(swatch);
        li.appendChild(document.createTextNode(props.category_name +
          (props.sensitivity === "person" ? " (shown on a whole area)" : "")));
        legend.appendChild(li);
      }
    }
    return colours[props.category];
  }

  function getJSON(url, revalidate) {
    // Needs change; revalidating (a 304 when unchanged) keeps the map as current as the list beside it.
    var options = { credentials: "same-origin", cache: revalidate ? "no-cache" : "default" };
    return fetch(url, options).then(function (r) {
      if (!r.ok) { throw new Error(url + ": " + r.status); }
      return r.json();
    });
  }

  function text(value) {
    var div = document.createElement("div");
    div.textContent = value == null ? "" : String(value);
    return div.innerHTML;
  }

  var map = L.map(el, { zoomSnap: 0.5, keyboard: true, scrollWheelZoom: false, minZoom: 11, maxZoom: 19 });
  map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
  map.attributionControl.addAttribution("Streets © OpenStreetMap contributors; boundaries © ONS");
  function addTiles(url, attribution) {
    // Only when a deployment configures a tile server; the default map needs no network beyond us.
    if (url) { L.tileLayer(url, { attribution: attribution || "", maxZoom: 19 }).addTo(map); }
  }
  map.setView([51.545, -0.16], 13);
  // Streets are drawn under needs, needs under the chosen circle.
  map.createPane("streets").style.zIndex = 410;
  map.createPane("needs").style.zIndex = 420;

  var picking = el.dataset.pick ? document.getElementById(el.dataset.pick) : null;
  var fitted = false;

  function fit(layer) {
    var bounds = layer.getBounds();
    if (bounds.isValid()) { map.fitBounds(bounds, { padding: [16, 16], maxZoom: 17, animate: false }); fitted = true; }
  }

  var loading = [];
  loading.push(getJSON(base + "/map/areas.geojson").then(function (data) {
    var areas = L.geoJSON(data, {
      interactive: false,
      style: function (f) {
        return f.properties.kind === "boundary"
          ? { color: "#0b3d2e", weight: 3, fill: false }
          : { color: "#6f777b", weight: 1.5, dashArray: "4 4", fillColor: "#ffffff", fillOpacity: 0.6 };
      }
    }).addTo(map);
    if (!fitted) { fit(areas); }
  }).catch(function () { /* the page's lists remain */ }));

  function streetPopup(props) {
    return '<a href="' + base + "/streets/" + encodeURIComponent(props.id) + '">' + text(props.name) + "</a>" +
      (props.ward ? "<br>" + text(props.ward) : "");
  }

  loading.push(getJSON(base + "/map/streets.geojson").then(function (data) {
    var streets = L.geoJSON(data, {
      pane: "streets",
      style: { color: "#505a5f", weight: 2, opacity: 0.8 },
      onEachFeature: function (f, layer) {
        layer.bindTooltip(text(f.properties.name), { sticky: true });
        layer.on("click", function (e) {
          if (picking) {
            pick(e.latlng);
            L.popup().setLatLng(e.latlng).setContent(streetPopup(f.properties)).openOn(map);
            L.DomEvent.stopPropagation(e);
          } else {
            window.location.href = base + "/streets/" + encodeURIComponent(f.properties.id);
          }
        });
      }
    }).addTo(map);
    // Leaflet makes every line with a tooltip a Tab stop: thousands of them would trap keyboard
    // users in the map. The streets are in the page's search and lists instead.
    streets.eachLayer(function (layer) {
      var path = layer.getElement && layer.getElement();
      if (path) { path.setAttribute("tabindex", "-1"); }
    });
  }).catch(function () {}));

  if (el.dataset.layers) {
    loading.push(getJSON(el.dataset.layers, true).then(function (data) {
      if (data.basemap) { addTiles(data.basemap.tiles, data.basemap.attribution); }
      var focus = L.geoJSON(data, {
        pane: "needs",
        filter: function (f) { return f.properties.role === "focus"; },
        style: { color: "#1d70b8", weight: 9, opacity: 0.45, fillColor: "#1d70b8", fillOpacity: 0.08 },
        interactive: false
      }).addTo(map);
      L.geoJSON(data, {
        pane: "needs",
        filter: function (f) { return f.properties.role === "need"; },
        style: function (f) {
          var c = colourOf(f.properties);
          // Needs on the same street stay visible: each further category is drawn thinner on top.
          var order = Object.keys(colours).indexOf(f.properties.category);
          return { color: c, weight: Math.max(3, 12 - 5 * order), opacity: 0.9, fillColor: c, fillOpacity: 0.12 };
        },
        onEachFeature: function (f, layer) {
          var p = f.properties;
          layer.bindPopup('<a href="' + text(p.url) + '">' + text(p.title) + "</a><br>" +
            text(p.category_name) + " · " + text(p.area));
        }
      }).addTo(map);
      if (focus.getLayers().length) { fit(focus); }
    }).catch(function () {}));
  }
  // Tests and screenshots wait for this: every layer drawn and the view settled.
  Promise.all(loading).then(function () { el.setAttribute("data-loaded", "true"); });

  if (!picking) { return; }
  // "Near me": show the form (hidden without JS) and fill it from a click or the browser's location.
  Array.prototype.forEach.call(document.querySelectorAll(".js-only"), function (n) { n.hidden = false; });
  var lat = picking.querySelector("[name=lat]");
  var lon = picking.querySelector("[name=lon]");
  var radius = picking.querySelector("[name=radius_m]");
  var status = document.getElementById("near-status");
  var circle = null;

  function say(message) { if (status) { status.textContent = message; } }

  function metres() { return Number(radius.value) || 300; }

  function pick(latlng) {
    lat.value = latlng.lat.toFixed(5);
    lon.value = latlng.lng.toFixed(5);
    if (circle) { circle.setLatLng(latlng).setRadius(metres()); }
    else {
      circle = L.circle(latlng, { radius: metres(), color: "#0b4f9c", weight: 3, fillOpacity: 0.1, interactive: false })
        .addTo(map);
    }
    say("Point chosen. We will follow the streets within " + metres().toLocaleString("en-GB") +
      " metres of it.");
  }

  map.on("click", function (e) { pick(e.latlng); });
  var centre = document.getElementById("near-centre");
  if (centre) { centre.addEventListener("click", function () { pick(map.getCenter()); }); }
  radius.addEventListener("change", function () {
    if (circle) { circle.setRadius(metres()); map.fitBounds(circle.getBounds(), { maxZoom: 17 }); pick(circle.getLatLng()); }
  });
  var locate = document.getElementById("near-locate");
  if (locate) {
    if (!navigator.geolocation) { locate.hidden = true; return; }
    locate.addEventListener("click", function () {
      say("Asking your browser for your location…");
      navigator.geolocation.getCurrentPosition(function (pos) {
        var here = L.latLng(pos.coords.latitude, pos.coords.longitude);
        pick(here);
        map.fitBounds(circle.getBounds(), { maxZoom: 17 });
      }, function () {
        say("We couldn't get your location. Click the map to choose a point instead, or search above.");
      }, { enableHighAccuracy: false, timeout: 15000, maximumAge: 600000 });
    });
  }
})();
