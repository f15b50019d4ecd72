// The segment tab's masks in the page, loaded by the page's head (webapp.blocks.serve):
// - the server's JSON (webapp.segment.SegmentTab.page_json, in the hidden #segment-decoder textbox) says which
//   embedding and decoder go with the shown image and which prompts the server holds;
// - moving the mouse over the canvas shows the mask of those prompts plus a foreground point at the cursor
//   (HoverPreview: throttled, one decode at a time), cleared when the mouse leaves; while a box is dragged in box mode,
//   the box's mask follows the mouse;
// - a click or a dragged box (webapp/drag_box.js sends it to the server and announces it) shows its mask at once;
//   the server's canvas replaces it when it arrives (the server's masks stay the source of everything else);
// - without the page's decoder (no WebAssembly SIMD, a failed load, a model it does not serve, the toggle off, or
//   none offered by the server) nothing is drawn here, the server answers as before, and one short notice says why.
// window.mobileSamSegment exposes the state for tests and benchmarks.

import {DECODER_EVENT, DecoderController} from './controller.js';
import {HoverPreview} from './hover.js';
import {paintMasks} from './masks.js';
import {REASONS} from './runtime.js';

const ACTION_EVENT = 'mobile-sam-action'; // webapp/drag_box.js
const DRAG_PIXELS = 6; // drag_box.js: a press that moves further is a drag
const MASK_RGB = [30, 144, 255]; // webapp.segment.CANDIDATE_COLOR, drawn at alpha 0.5 as the server does
const LOCAL_ALPHA = 128, HOVER_ALPHA = 110;
const MARKER = {1: 'rgb(40, 200, 70)', 0: 'rgb(230, 40, 40)', box: 'rgb(255, 200, 0)'}; // samkit.drawing's colours
const REMEMBERED = 8; // decodes kept by prompt: a click at the hovered pixel reuses the hover's decode
const SERVER_TIMEOUT_MS = 1500; // the server answered without a new canvas (an error): drop the local mask then
const NOTICES = {
  loading: 'Preparing the in-browser decoder: the server answers clicks meanwhile.',
  fallback: (reason) => `Masks come from the server: ${REASONS[reason] || REASONS['load-failed']}.`,
};

const canvasImage = () => document.querySelector('#segment-canvas img');
const mode = () => document.querySelector('#segment-mode input[type=radio]:checked')?.value || '';
const isBoxMode = () => mode().startsWith('Box');

/** drag_box.js's mapping: a mouse event -> displayed-image pixel [x, y] (rounded), or null off the image. */
function toDisplay(img, event) {
  if (!img || event.target !== img || !img.naturalWidth) return null;
  const r = img.getBoundingClientRect();
  const scale = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight, 1);
  const dx = (r.width - img.naturalWidth * scale) / 2, dy = (r.height - img.naturalHeight * scale) / 2;
  return [Math.round((event.clientX - r.left - dx) / scale), Math.round((event.clientY - r.top - dy) / scale)];
}

function orderedBox([x0, y0], [x1, y1]) {
  return [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)];
}

const hasArea = ([x0, y0], [x1, y1]) => Math.abs(x1 - x0) >= 1 && Math.abs(y1 - y0) >= 1; // ClickPrompts.add_box

class SegmentPage {
  constructor() {
    this.server = null; // the last page JSON
    this.controller = null;
    this.embeddingUrl = null; // the current image's embedding link (null: none offered)
    this.loadedUrl = null; // the link the controller was last asked to load
    this.pending = []; // actions announced but not yet applied by the server: {id, click | box, mode, scale}
    this.drag = null; // {start: image pixel [x, y], client: [x, y], moving} while the mouse is down on the canvas
    this.cursor = null; // the last image pixel under the mouse
    this.lastHover = null; // the image pixel of the hover mask drawn last
    this.enabled = true;
    this.notice = '';
    this.localSource = null; // the canvas image's src when the local mask was drawn
    this.localTimer = null;
    this.decodes = new Map(); // JSON of a prompt -> Promise of its masks, for the current decoder and image
    this.stats = {local: [], hover: [], cleared: [], serverImages: []};
    this.preview = new HoverPreview({
      decode: (x, y) => this.decode(this.hoverPrompt(x, y)),
      draw: (masks, move) => this.drawHover(masks, move),
      onError: (error) => console.warn('mask preview:', error),
    });
    this.listen();
    const initial = document.querySelector('#segment-decoder textarea, #segment-decoder input');
    if (initial && initial.value) this.update(initial.value);
  }

  /** The server's page JSON arrived (every answer of the segment tab). */
  update(text) {
    let server;
    try {
      server = JSON.parse(text);
    } catch {
      return;
    }
    this.server = server;
    this.pending = this.pending.filter((action) => action.id > server.applied);
    const url = server.decoder ? server.decoder.embedding_url : null;
    if (url !== this.embeddingUrl) {
      this.embeddingUrl = url;
      this.preview.leave();
      this.clearLocal();
      if (url) this.load();
    }
    if (!this.pending.length) this.settleLocal();
    this.announce();
  }

  get ready() {
    return Boolean(this.enabled && this.server && this.server.decoder && this.controller && this.controller.ready);
  }

  load() {
    const {decoder} = this.server;
    if (!this.enabled) return;
    if (!this.controller) {
      this.controller = new DecoderController({ortUrl: decoder.ort_url, decoderBase: decoder.decoder_base});
      this.controller.addEventListener(DECODER_EVENT, () => this.announce());
    }
    const headers = {[decoder.session_header]: String(window.__gradio_session_hash__ || '')};
    this.loadedUrl = decoder.embedding_url;
    this.decodes.clear();
    this.controller.loadEmbedding(decoder.embedding_url, {headers}).then((state) => {
      this.announce();
      const [height, width] = this.server.image || [2, 2];
      if (state === 'ready') this.decode({points: [[width / 2, height / 2]], labels: [1], boxes: []}).catch(() => {});
    });
  }

  setEnabled(on) {
    this.enabled = Boolean(on);
    this.preview.setEnabled(this.enabled);
    if (this.controller) this.controller.setEnabled(this.enabled);
    if (!this.enabled) this.clearLocal();
    else if (this.embeddingUrl && this.embeddingUrl !== this.loadedUrl) this.load();
    this.announce();
  }

  /** The one notice: why masks come from the server, or nothing while the page decodes. */
  announce() {
    let text = '';
    if (!this.enabled) text = NOTICES.fallback('off');
    else if (this.server && this.server.image && !this.server.decoder) {
      text = this.server.reason === 'loading' ? NOTICES.loading : NOTICES.fallback(this.server.reason);
    } else if (this.controller && this.controller.state === 'fallback') text = NOTICES.fallback(this.controller.reason);
    if (text !== this.notice) {
      this.notice = text;
      const target = document.querySelector('#segment-decoder-notice .prose') || document.querySelector('#segment-decoder-notice');
      if (target) target.textContent = text;
      if (text) console.info(`mask preview: ${text}`, this.server && this.server.message);
    }
  }

  // ---- prompts ---------------------------------------------------------------------------------

  /** The server's prompts with the announced actions it has not applied yet, as webapp.clicks.ClickPrompts does. */
  placed() {
    const {prompts, corner} = this.server;
    const placed = {points: [...prompts.points], labels: [...prompts.labels], boxes: [...prompts.boxes], corner};
    for (const action of this.pending) {
      const toImage = ([x, y]) => [x / action.scale, y / action.scale];
      if (action.box) {
        const [p, q] = [toImage(action.box.slice(0, 2)), toImage(action.box.slice(2))];
        if (hasArea(p, q)) placed.boxes.push(orderedBox(p, q));
        placed.corner = null;
      } else if (action.mode.startsWith('Box')) {
        const p = toImage(action.click);
        if (placed.corner === null) placed.corner = p;
        else {
          if (hasArea(placed.corner, p)) placed.boxes.push(orderedBox(placed.corner, p));
          placed.corner = null;
        }
      } else {
        placed.points.push(toImage(action.click));
        placed.labels.push(action.mode.startsWith('Background') ? 0 : 1);
        placed.corner = null;
      }
    }
    return placed;
  }

  /** What the mouse at image pixel (x, y) previews: the dragged box, the box from the pending corner, or a point. */
  hoverPrompt(x, y) {
    const {points, labels, boxes, corner} = this.placed();
    if (this.drag && this.drag.moving) return {points, labels, boxes: [...boxes, orderedBox(this.drag.start, [x, y])]};
    if (corner && isBoxMode()) return {points, labels, boxes: [...boxes, orderedBox(corner, [x, y])]};
    return {points: [...points, [x, y]], labels: [...labels, 1], boxes};
  }

  /** The masks of a prompt (BrowserDecoder.decode); the last REMEMBERED prompts' decodes are shared. */
  decode(prompt) {
    const key = JSON.stringify(prompt);
    if (!this.decodes.has(key)) {
      const masks = this.controller.decode(prompt);
      masks.catch(() => this.decodes.delete(key));
      this.decodes.set(key, masks);
      if (this.decodes.size > REMEMBERED) this.decodes.delete(this.decodes.keys().next().value);
    }
    return this.decodes.get(key);
  }

  /** Display pixels per image pixel (webapp.segment.SegmentState.display_scale), or null for a canvas not showing
   * the server's current image. */
  scale(img) {
    if (!this.server || !this.server.image || !img || !img.naturalWidth) return null;
    const [height, width] = this.server.image;
    const scale = img.naturalWidth / width;
    return Math.abs(img.naturalHeight - height * scale) <= 1 ? scale : null;
  }

  // ---- events ----------------------------------------------------------------------------------

  listen() {
    document.addEventListener(ACTION_EVENT, (event) => this.onAction(event.detail));
    document.addEventListener('mousemove', (event) => this.onMove(event), {passive: true, capture: true});
    document.addEventListener('mouseleave', () => this.preview.leave(), {passive: true});
    document.addEventListener('mousedown', (event) => {
      const img = canvasImage(), point = toDisplay(img, event), scale = this.scale(img);
      if (point && scale) this.drag = {start: [point[0] / scale, point[1] / scale], client: [event.clientX, event.clientY], moving: false};
    }, true);
    document.addEventListener('mouseup', () => { this.drag = null; }, true);
    document.addEventListener('change', (event) => {
      if (event.target.closest && event.target.closest('#segment-preview')) this.setEnabled(event.target.checked);
    }, true);
    document.addEventListener('load', (event) => {
      if (event.target === canvasImage()) this.onCanvasLoaded();
    }, true);
  }

  onMove(event) {
    const img = canvasImage(), point = toDisplay(img, event), scale = this.scale(img);
    if (!point || !scale || !this.ready) {
      this.cursor = null;
      this.preview.leave();
      return;
    }
    if (this.drag && !this.drag.moving && isBoxMode()) {
      this.drag.moving = Math.hypot(event.clientX - this.drag.client[0], event.clientY - this.drag.client[1]) > DRAG_PIXELS;
    }
    this.cursor = [point[0] / scale, point[1] / scale];
    this.preview.move(...this.cursor);
  }

  async onAction(detail) {
    const img = canvasImage(), scale = this.scale(img);
    if (!scale) return;
    this.pending.push({...detail, scale});
    if (!this.ready) return;
    const placed = this.placed();
    const prompt = {points: placed.points, labels: placed.labels, boxes: placed.boxes};
    if (placed.corner || (!prompt.points.length && !prompt.boxes.length)) return;
    const start = performance.now();
    this.localSource = img.currentSrc || img.src;
    let masks;
    try {
      masks = await this.decode(prompt);
    } catch (error) {
      console.warn('mask preview:', error);
      return;
    }
    if (!this.pending.some((action) => action.id === detail.id) || canvasImage() !== img) return; // answered already
    this.paint(this.layer('local'), masks, LOCAL_ALPHA, prompt);
    this.stats.local.push({id: detail.id, ms: performance.now() - start, at: performance.now()});
    if (this.cursor) this.preview.move(...this.cursor); // the hover now adds to the new prompts
  }

  onCanvasLoaded() {
    this.stats.serverImages.push(performance.now());
    if (!this.pending.length) this.settleLocal();
    this.layout();
  }

  /** The server has applied every action: drop the local mask once its canvas shows (or soon, if none comes). */
  settleLocal() {
    if (this.localSource === null) return;
    const img = canvasImage();
    const shown = img && (img.currentSrc || img.src) !== this.localSource && img.complete;
    clearTimeout(this.localTimer);
    if (shown) this.clearLocal();
    else this.localTimer = setTimeout(() => this.clearLocal(), SERVER_TIMEOUT_MS);
  }

  clearLocal() {
    clearTimeout(this.localTimer);
    if (this.localSource !== null) this.stats.cleared.push(performance.now());
    this.localSource = null;
    const canvas = document.querySelector('#segment-local-mask');
    if (canvas) canvas.getContext('2d').clearRect(0, 0, canvas.width, canvas.height);
  }

  // ---- drawing ---------------------------------------------------------------------------------

  drawHover(masks, move) {
    const canvas = this.layer('hover');
    if (!masks) {
      if (canvas) canvas.getContext('2d').clearRect(0, 0, canvas.width, canvas.height);
      return;
    }
    this.paint(canvas, masks, HOVER_ALPHA, null);
    this.lastHover = {x: move.x, y: move.y};
    requestAnimationFrame(() => this.stats.hover.push(performance.now() - move.time));
  }

  /** The union of masks (decoder outputs) at the canvas's size in MASK_RGB, and the prompt's markers if given. */
  paint(canvas, masks, alpha, prompt) {
    if (!canvas) return;
    const {width, height} = canvas;
    const header = this.controller.embedding.header;
    if (!canvas.pixels || canvas.pixels.width !== width || canvas.pixels.height !== height) {
      canvas.pixels = new ImageData(width, height);
    }
    const context = canvas.getContext('2d');
    const planes = masks.map(({plane}) => plane);
    context.putImageData(paintMasks(planes, header, canvas.pixels, [...MASK_RGB, alpha]), 0, 0);
    if (prompt) this.markers(context, prompt, width / header.original_size[1]);
  }

  markers(context, {points, labels, boxes}, scale) {
    const line = Math.max(1, Math.round(Math.max(context.canvas.width, context.canvas.height) / 320));
    const radius = Math.max(3, 3 * line);
    context.lineWidth = line;
    context.strokeStyle = MARKER.box;
    for (const [x0, y0, x1, y1] of boxes) context.strokeRect(x0 * scale, y0 * scale, (x1 - x0) * scale, (y1 - y0) * scale);
    points.forEach(([x, y], i) => {
      context.beginPath();
      context.arc(x * scale, y * scale, radius + line, 0, 2 * Math.PI);
      context.fillStyle = 'white';
      context.fill();
      context.beginPath();
      context.arc(x * scale, y * scale, radius, 0, 2 * Math.PI);
      context.fillStyle = MARKER[labels[i]];
      context.fill();
    });
  }

  /** The overlay canvas `name` ("hover" or "local") over the canvas image, at its natural size, placed on it. */
  layer(name) {
    const img = canvasImage();
    if (!img || !img.naturalWidth) return null;
    const id = `segment-${name}-mask`;
    let canvas = document.getElementById(id);
    if (!canvas || canvas.parentElement !== img.parentElement) {
      canvas?.remove();
      canvas = Object.assign(document.createElement('canvas'), {id});
      Object.assign(canvas.style, {position: 'absolute', pointerEvents: 'none', zIndex: name === 'hover' ? 2 : 1});
      img.parentElement.style.position = 'relative';
      img.parentElement.appendChild(canvas);
    }
    if (canvas.width !== img.naturalWidth || canvas.height !== img.naturalHeight) {
      Object.assign(canvas, {width: img.naturalWidth, height: img.naturalHeight});
    }
    this.place(canvas, img);
    return canvas;
  }

  layout() {
    const img = canvasImage();
    for (const id of ['segment-hover-mask', 'segment-local-mask']) {
      const canvas = document.getElementById(id);
      if (canvas && img && canvas.parentElement === img.parentElement) this.place(canvas, img);
    }
  }

  /** Put canvas exactly over the image's content box (the image is letterboxed, never enlarged: drag_box.js). */
  place(canvas, img) {
    const r = img.getBoundingClientRect(), parent = img.parentElement.getBoundingClientRect();
    const scale = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight, 1);
    const width = img.naturalWidth * scale, height = img.naturalHeight * scale;
    Object.assign(canvas.style, {
      left: `${r.left - parent.left + (r.width - width) / 2}px`,
      top: `${r.top - parent.top + (r.height - height) / 2}px`,
      width: `${width}px`,
      height: `${height}px`,
    });
  }

  /** Where a layer is painted (alpha > 0): base64 of the packed bits, row-major at its size (tests). */
  painted(name) {
    const canvas = document.getElementById(`segment-${name}-mask`);
    if (!canvas) return null;
    const {data} = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    const packed = new Uint8Array(Math.ceil(data.length / 32));
    for (let i = 0; i < data.length / 4; i++) if (data[4 * i + 3] > 0) packed[i >> 3] |= 0x80 >> (i & 7);
    let text = '';
    for (let i = 0; i < packed.length; i += 0x8000) text += String.fromCharCode(...packed.subarray(i, i + 0x8000));
    return {width: canvas.width, height: canvas.height, bits: btoa(text)};
  }
}

window.mobileSamSegment = new SegmentPage();
window.addEventListener('resize', () => window.mobileSamSegment.layout());
