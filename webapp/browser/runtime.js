// onnxruntime-web from the server's own static path (never a CDN): the WebAssembly build, SIMD, with threads
// when the page is cross-origin isolated (COOP/COEP headers), else one thread. The page runs it in its own decoder
// worker (decoder.js): a decode never blocks the page, so mouse moves and the rest of the page go on meanwhile.

export const ORT_ENTRY = 'ort.wasm.min.mjs';
const MAX_THREADS = 4;

// The smallest module that uses a SIMD instruction: (func (result v128) i32.const 0 i8x16.splat i8x16.popcnt).
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11,
]);

/** Why the page cannot decode itself; `reason` is one of REASONS' keys. */
export class Unavailable extends Error {
  constructor(reason, detail = '') {
    super(detail ? `${REASONS[reason]} (${detail})` : REASONS[reason]);
    this.name = 'Unavailable';
    this.reason = reason;
  }
}

export const REASONS = {
  'no-simd': 'this browser has no WebAssembly SIMD',
  'load-failed': 'the in-browser decoder could not be loaded',
  'unsupported-model': 'this model has no in-browser decoder',
  'off': 'the in-browser preview is turned off',
};

export function hasWasmSimd() {
  return typeof WebAssembly === 'object' && WebAssembly.validate(SIMD_PROBE);
}

/**
 * Threads onnxruntime-web may use here: one unless the page is cross-origin isolated, else onnxruntime-web's own
 * default, half the logical cores and at most MAX_THREADS (the rest keeps the page and the browser responsive).
 */
export function threadCount() {
  if (!globalThis.crossOriginIsolated) return 1;
  return Math.min(MAX_THREADS, Math.ceil((navigator.hardwareConcurrency || 1) / 2));
}

const loaded = new Map();

/** url resolved against the page (or, in a worker, the worker script's) address. */
export function absoluteUrl(url) {
  return new URL(url, globalThis.document ? document.baseURI : globalThis.location.href).href;
}

/**
 * The onnxruntime-web module served under ortUrl (a folder URL ending in "/"), configured once per page or worker,
 * running where it is loaded (no proxy worker of its own): threads (default threadCount()).
 * Rejects with Unavailable('no-simd') or Unavailable('load-failed').
 */
export function loadOrt(ortUrl, {threads = threadCount()} = {}) {
  const base = absoluteUrl(ortUrl);
  if (!loaded.has(base)) loaded.set(base, importOrt(base, threads));
  return loaded.get(base);
}

async function importOrt(base, threads) {
  if (!hasWasmSimd()) throw new Unavailable('no-simd');
  let ort;
  try {
    ort = await import(new URL(ORT_ENTRY, base).href);
  } catch (error) {
    loaded.delete(base);
    throw new Unavailable('load-failed', String(error && error.message || error));
  }
  ort.env.wasm.wasmPaths = base;
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.simd = true;
  ort.env.wasm.proxy = false;
  return ort;
}
