// Copy the web map library from node_modules into the Python package, so that `pip install`
// needs no npm and the page loads nothing from a CDN. Run after `npm ci`: `npm run build`.
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const source = join(here, "node_modules", "leaflet");
const target = join(here, "..", "pipelines", "serve", "static", "vendor", "leaflet");

rmSync(target, { recursive: true, force: true });
mkdirSync(target, { recursive: true });
for (const file of ["dist/leaflet.js", "dist/leaflet.css", "dist/images", "LICENSE"]) {
  cpSync(join(source, file), join(target, file.replace(/^dist\//, "")), { recursive: true });
}
console.log(`vendored leaflet into ${target}`);
