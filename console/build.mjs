// Bundles src/ into ../src/hyperlocal/console/static/: index.html plus content-hashed files
// under assets/ (the Python router serves those with a one-year cache). Run `npm run build`.
import { mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.resolve(here, "../src/hyperlocal/console/static");
const assetsDir = path.join(outDir, "assets");
const base = "/console/assets/";
const watch = process.argv.includes("--watch");

const favicon =
  "data:image/svg+xml," +
  encodeURIComponent(
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">' +
      '<stop offset="0" stop-color="#6e6af0"/><stop offset="1" stop-color="#22b8cf"/></linearGradient></defs>' +
      '<rect width="32" height="32" rx="8" fill="url(#g)"/><circle cx="16" cy="16" r="6.5" fill="none" stroke="#fff" stroke-width="3"/>' +
      '<circle cx="16" cy="16" r="2" fill="#fff"/></svg>',
  );

function page(script, stylesheet) {
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <meta name="color-scheme" content="light dark" />
    <title>hyperlocal console</title>
    <link rel="icon" href="${favicon}" />
    <link rel="stylesheet" href="${base}${stylesheet}" />
    <script>
      (function () {
        var t = localStorage.getItem("hyperlocal.theme");
        if (!t) t = matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
        document.documentElement.dataset.theme = t;
      })();
    </script>
    <script type="module" src="${base}${script}"></script>
  </head>
  <body>
    <div id="app"></div>
    <noscript>The hyperlocal console needs JavaScript. The API itself is documented at /docs.</noscript>
  </body>
</html>
`;
}

const writeIndex = {
  name: "index-html",
  setup(build) {
    build.onStart(async () => {
      await rm(assetsDir, { recursive: true, force: true });
      await mkdir(assetsDir, { recursive: true });
    });
    build.onEnd(async (result) => {
      if (result.errors.length || !result.metafile) return;
      const outputs = Object.entries(result.metafile.outputs);
      const [entry, meta] = outputs.find(([, m]) => m.entryPoint === "src/main.tsx");
      const css = meta.cssBundle;
      if (!css) throw new Error("the entry point has no CSS bundle");
      await writeFile(path.join(outDir, "index.html"), page(path.basename(entry), path.basename(css)));
      const sizes = outputs.map(([file, m]) => `  ${path.relative(outDir, file)}  ${(m.bytes / 1024).toFixed(1)} KiB`);
      console.log(`console built into ${path.relative(process.cwd(), outDir)}:\n${sizes.join("\n")}`);
    });
  },
};

const options = {
  absWorkingDir: here,
  entryPoints: { app: "src/main.tsx" },
  bundle: true,
  splitting: true,
  format: "esm",
  target: ["es2022", "chrome111", "firefox111", "safari16"],
  outdir: assetsDir,
  entryNames: "[name]-[hash]",
  chunkNames: "[name]-[hash]",
  assetNames: "[name]-[hash]",
  loader: { ".woff2": "file" },
  jsx: "automatic",
  jsxImportSource: "preact",
  minify: true,
  legalComments: "eof",
  metafile: true,
  logLevel: "warning",
  define: { "process.env.NODE_ENV": '"production"' },
  plugins: [writeIndex],
};

if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
  console.log("watching src/ ...");
} else {
  await esbuild.build(options);
}
