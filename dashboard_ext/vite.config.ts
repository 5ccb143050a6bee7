/// <reference types="vitest/config" />
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'
import vuetify from 'vite-plugin-vuetify'

// The page is served by the plugin at <prefix>/live/ on the AstrBot dashboard origin,
// so every asset URL is relative (base './') and works behind a reverse-proxy prefix.
// The output is committed: keep it deterministic (content hashes only, no timestamps).
// Two pages: the Live page (index.html) and the OBS overlay (overlay.html, served at /live/overlay);
// the code they share (socket, audio playback, protocol) lands in shared chunks.
export default defineConfig({
  base: './',
  plugins: [vue(), vuetify({ autoImport: true })],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2020',
    sourcemap: false,
    reportCompressedSize: false,
    chunkSizeWarningLimit: 800,
    rolldownOptions: {
      input: {
        index: 'index.html',
        overlay: 'overlay.html',
      },
      output: { chunkFileNames: 'assets/shared-[hash].js' },
    },
  },
  worker: { format: 'es' },
  test: {
    include: ['tests/**/*.test.ts'],
    environment: 'node',
  },
})
