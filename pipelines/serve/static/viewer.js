// The lsmap viewer: probability tiles from the app's titiler endpoints, landslide polygons on top
// with their attributes on click, an opacity slider and a legend. No basemap: nothing is fetched
// from outside the app.
"use strict";

const POLYGON_STYLE = { color: "#00e5ff", weight: 2, fillColor: "#00e5ff", fillOpacity: 0.15 };

async function getJSON(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

function formatValue(value) {
  if (typeof value === "number" && !Number.isInteger(value)) return value.toFixed(4);
  if (value !== null && typeof value === "object") return JSON.stringify(value);
  return String(value);
}

// Built with DOM nodes, not HTML strings: attribute values are data, never markup.
function attributeTable(feature) {
  const properties = feature.properties || {};
  const box = document.createElement("div");
  const heading = document.createElement("strong");
  heading.textContent = `Landslide ${properties.landslide_id ?? properties.id ?? ""}`;
  const table = document.createElement("table");
  table.className = "attributes";
  box.append(heading, table);
  for (const [key, value] of Object.entries(properties)) {
    if (value === null) continue; // unknown here (e.g. no event): keep the popup short
    const row = table.insertRow();
    const name = document.createElement("th");
    name.textContent = key;
    row.appendChild(name);
    row.insertCell().textContent = formatValue(value);
  }
  return box;
}

function probabilityLayer(tilejson, opacity) {
  const [west, south, east, north] = tilejson.bounds;
  return L.tileLayer(tilejson.tiles[0], {
    bounds: L.latLngBounds([south, west], [north, east]),
    minNativeZoom: tilejson.minzoom,
    // The server resamples a little past the native zoom (crisp pixels); the browser beyond.
    maxNativeZoom: tilejson.maxzoom + 2,
    maxZoom: tilejson.maxzoom + 4,
    opacity: opacity,
  });
}

function showLegend(legend) {
  document.getElementById("legend-title").textContent = legend.title;
  document.getElementById("legend-ramp").src = legend.image;
  document.getElementById("legend-min").textContent = legend.min;
  document.getElementById("legend-max").textContent = legend.max;
}

// Susceptibility classes, highest first: a swatch of the class colour, its name, its range.
function showZones(zones) {
  document.getElementById("zones-legend").hidden = false;
  document.getElementById("zones-title").textContent = zones.title;
  const list = document.getElementById("zones-classes");
  for (const zone of zones.classes) {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "class-swatch";
    swatch.style.background = zone.colour;
    const name = document.createElement("span");
    name.textContent = zone.name;
    const range = document.createElement("span");
    range.className = "class-range";
    range.textContent = zone.range;
    item.append(swatch, name, range);
    list.appendChild(item);
  }
}

function listServices(wmts) {
  const list = document.getElementById("wmts");
  for (const [id, url] of Object.entries(wmts)) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = url;
    link.textContent = `${id}: ${url}`;
    item.appendChild(link);
    list.appendChild(item);
  }
}

async function main() {
  const description = await getJSON("api/map.json");
  document.title = description.title;
  document.getElementById("title").textContent = description.title;
  showLegend(description.legend);
  if (description.zones) showZones(description.zones);
  listServices(description.wmts);

  const slider = document.getElementById("opacity");
  const opacity = () => Number(slider.value) / 100;
  const map = L.map("map");
  const baseLayers = {};
  let bounds = null;
  for (const layer of description.layers) {
    const tilejson = await getJSON(layer.tilejson);
    baseLayers[layer.label] = probabilityLayer(tilejson, opacity());
    bounds = bounds || baseLayers[layer.label].options.bounds;
  }
  const probability = Object.values(baseLayers);
  probability[0].addTo(map);
  map.setMinZoom(Math.max(0, map.getBoundsZoom(bounds) - 4));
  map.fitBounds(bounds);

  const overlays = {};
  let polygons = null;
  if (description.polygons) {
    polygons = L.geoJSON(await getJSON(description.polygons), {
      style: POLYGON_STYLE,
      onEachFeature: (feature, layer) => layer.bindPopup(() => attributeTable(feature)),
    }).addTo(map);
    overlays["Landslide polygons"] = polygons;
  }
  L.control.layers(baseLayers, overlays, { collapsed: false }).addTo(map);
  L.control.scale({ imperial: false }).addTo(map);

  slider.addEventListener("input", () => {
    document.getElementById("opacity-value").textContent = `${slider.value}%`;
    for (const layer of probability) layer.setOpacity(opacity());
  });
  // For the browser console (and the tests): the Leaflet map and the polygon layer.
  window.lsmap = { map, polygons };
}

main().catch((error) => {
  console.error(error);
  document.getElementById("title").textContent = `Could not load the map: ${error.message}`;
});
