// Bundles the demo account page (src/demo) with the browser client into dist/demo.
// No CDN: everything the page needs is served by Tessera itself.
import { copyFileSync, mkdirSync } from 'node:fs';
import { build } from 'esbuild';

mkdirSync('dist/demo', { recursive: true });
await build({
  entryPoints: ['src/demo/app.ts'],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  outfile: 'dist/demo/app.js',
  logLevel: 'warning',
});
for (const file of ['index.html', 'style.css']) copyFileSync(`src/demo/${file}`, `dist/demo/${file}`);
