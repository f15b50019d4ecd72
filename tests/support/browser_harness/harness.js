// Test and benchmark harness (not the app): the page's decoder modules on one embedding, driven from playwright
// through window.harness. Query: js, ort, decoders (folder URLs), embedding (file URL), width, height (display),
// optionally proxy=0 (onnxruntime-web on the main thread) and threads=N (instead of the page's default).

const params = new URLSearchParams(location.search);
const js = params.get('js');
const [{DECODER_EVENT, DecoderController}, {HoverPreview, attachHover}, {displayLogits, displayMask, maskImage}] =
  await Promise.all([import(`${js}controller.js`), import(`${js}hover.js`), import(`${js}masks.js`)]);

const width = Number(params.get('width')), height = Number(params.get('height'));
const canvas = document.getElementById('mask');
for (const element of [canvas, document.getElementById('photo')]) Object.assign(element, {width, height});
const context = canvas.getContext('2d');

const runtime = {
  ...(params.get('proxy') === '0' ? {proxy: false} : {}),
  ...(params.has('threads') ? {threads: Number(params.get('threads'))} : {}),
};
const controller = new DecoderController({ortUrl: params.get('ort'), decoderBase: params.get('decoders'), runtime});
const events = [];
controller.addEventListener(DECODER_EVENT, (event) => events.push(event.detail));

let placed = {points: [], labels: [], boxes: []};
const latencies = [];
let lastDraw = null;
const flight = {now: 0, max: 0}; // decodes of the hover preview running at once

function union(masks) {
  const header = controller.embedding.header;
  const shown = new Uint8Array(width * height);
  for (const {plane} of masks) {
    const mask = displayMask(plane, header, width, height);
    for (let i = 0; i < shown.length; i++) shown[i] |= mask[i];
  }
  return shown;
}

const preview = new HoverPreview({
  decode: async (x, y) => {
    flight.max = Math.max(flight.max, ++flight.now);
    try {
      return await controller.decode({points: [...placed.points, [x, y]], labels: [...placed.labels, 1], boxes: placed.boxes});
    } finally {
      flight.now--;
    }
  },
  draw: (masks, move) => {
    context.clearRect(0, 0, width, height);
    if (!masks) return;
    const shown = union(masks);
    context.putImageData(maskImage(shown, width, height), 0, 0);
    latencies.push(performance.now() - move.time);
    lastDraw = {x: move.x, y: move.y, pixels: shown.reduce((a, b) => a + b, 0)};
  },
});
attachHover(canvas, preview, (event) => {
  if (!controller.ready) return null;
  const [originalH, originalW] = controller.embedding.header.original_size;
  return [event.offsetX * originalW / width, event.offsetY * originalH / height];
});
document.getElementById('toggle').addEventListener('change', (event) => {
  controller.setEnabled(event.target.checked);
  preview.setEnabled(event.target.checked);
});

function base64(bytes) {
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

function packBits(mask) {
  const packed = new Uint8Array(Math.ceil(mask.length / 8));
  for (let i = 0; i < mask.length; i++) if (mask[i]) packed[i >> 3] |= 0x80 >> (i & 7);
  return packed;
}

window.harness = {
  controller, preview, events, latencies, flight,
  get lastDraw() { return lastDraw; },
  get threads() { return controller.decoder ? controller.decoder.threads : null; },
  load: (url) => controller.loadEmbedding(url),
  setPlaced: (prompt) => { placed = prompt; },
  /** The shown masks' union at display size (width x height), np.packbits order, base64. */
  mask: async (prompt) => base64(packBits(union(await controller.decode(prompt)))),
  /** Where the hover canvas is painted (alpha > 0), packed and encoded as `mask`. */
  painted: () => {
    const data = context.getImageData(0, 0, width, height).data;
    return base64(packBits(Uint8Array.from({length: width * height}, (_, i) => (data[4 * i + 3] > 0 ? 1 : 0))));
  },
  /** The first mask's logits at (w, h), float32 little-endian, base64. */
  logits: async (prompt, w, h) => {
    const [{plane}] = await controller.decode(prompt);
    return base64(new Uint8Array(displayLogits(plane, controller.embedding.header, w, h).buffer));
  },
  /** Milliseconds of n decodes of one prompt, one after the other. */
  time: async (prompt, n) => {
    const times = [];
    for (let i = 0; i < n; i++) {
      const start = performance.now();
      await controller.decode(prompt);
      times.push(performance.now() - start);
    }
    return times;
  },
};
window.harnessReady = true;
