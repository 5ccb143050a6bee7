/**
 * The OBS overlay (`/live/overlay`): captions of a live room over a transparent background.
 * Plain Vue, no Vuetify: an OBS browser source should stay light.
 */
import { createApp } from 'vue'
import OverlayApp from './OverlayApp.vue'
import './overlay.css'

createApp(OverlayApp).mount('#overlay')
