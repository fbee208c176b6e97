// Bundles the drivers with esbuild into dist/: node.js (the Node.js
// driver), chromium.js (the Node.js program that runs the driver in a page
// of headless Chromium) and page.js (that page's script).
import * as esbuild from "esbuild";

const common = { bundle: true, format: "esm", target: "es2022", logLevel: "warning" };
await esbuild.build({
  ...common,
  entryPoints: ["src/node.ts"],
  platform: "node",
  outfile: "dist/node.js",
  external: ["ws"],
});
await esbuild.build({
  ...common,
  entryPoints: ["src/chromium.ts"],
  platform: "node",
  outfile: "dist/chromium.js",
  external: ["playwright-core"],
});
await esbuild.build({
  ...common,
  entryPoints: ["src/page.ts"],
  platform: "browser",
  outfile: "dist/page.js",
});
