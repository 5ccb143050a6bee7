/// <reference types="vitest/config" />
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'
import vuetify from 'vite-plugin-vuetify'

// The page is served by the plugin at <prefix>/live/ on the AstrBot dashboard origin,
// so every asset URL is relative (base './') and works behind a reverse-proxy prefix.
// The output is committed: keep it deterministic (content hashes only, no timestamps).
// Two pages: the Live page (index.html) and the OBS overlay (overlay.html, served at /live/overlay),
// plus the WebChat button script (src/webchat, self-contained); the code the pages share (socket,
// audio playback, protocol) lands in shared chunks.
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
        // The WebChat button: a plain script added to the host dashboard's own index page.
        // The plugin finds it as dist/assets/webchat-<hash>.js (live/host/webchat_page.py).
        webchat: 'src/webchat/main.ts',
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
