// Builds the console into crates/certbound-broker/ui-dist with fixed names:
// index.html, assets/app.js, assets/app.css — nothing else, nothing inline
// (the broker serves /ui with CSP script-src 'self'; style-src 'self').
import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

const outDir = fileURLToPath(new URL('../crates/certbound-broker/ui-dist', import.meta.url));

export default defineConfig({
  base: '/ui/',
  publicDir: false,
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir,
    emptyOutDir: true,
    assetsDir: 'assets',
    assetsInlineLimit: 0,
    cssCodeSplit: false,
    modulePreload: false,
    sourcemap: false,
    target: 'es2020',
    rollupOptions: {
      output: {
        entryFileNames: 'assets/app.js',
        chunkFileNames: 'assets/app.js',
        assetFileNames: 'assets/app[extname]',
        inlineDynamicImports: true,
      },
    },
  },
});
