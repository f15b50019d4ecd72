// The page's side of "masks in the browser": which decoder goes with the current image, whether the page may
// decode at all, and the signal that tells the page to use the server round trip instead.
//
// Every change is announced as a CustomEvent(DECODER_EVENT, {detail: {state, reason, message}}) on the
// controller: state "idle" (no image), "loading" (an image's embedding or decoder is on its way: use the server
// meanwhile), "ready" (decode here) or "fallback" (use the server and say why, once; reason is a REASONS key:
// "no-simd", "load-failed", "unsupported-model", or "off" for the toggle).

import {BrowserDecoder} from './decoder.js';
import {fetchEmbedding} from './embedding.js';
import {REASONS, Unavailable} from './runtime.js';

export const DECODER_EVENT = 'mobile-sam-decoder';

export class DecoderController extends EventTarget {
  /**
   * ortUrl: onnxruntime-web's folder URL; decoderBase: the decoder files' folder URL (both ending in "/");
   * runtime: BrowserDecoder.open's options ({threads, proxy}).
   */
  constructor({ortUrl, decoderBase, runtime = {}}) {
    super();
    Object.assign(this, {ortUrl, decoderBase, runtime});
    this.decoders = new Map(); // decoder file name -> Promise<BrowserDecoder>
    this.ticket = 0; // the latest image asked for; older loads are ignored when they finish
    this.loading = false;
    this.embedding = null;
    this.decoder = null;
    this.failure = null; // why the current image cannot be decoded here (an Unavailable), if so
    this.enabled = true;
    this.state = 'idle';
    this.reason = null;
  }

  /** True when masks may be decoded here now. */
  get ready() {
    return this.state === 'ready';
  }

  /** A new image: fetch its embedding file, then load the decoder its header names. Resolves to the new state. */
  async loadEmbedding(url, init = {}) {
    const ticket = this.begin();
    let embedding;
    try {
      embedding = await fetchEmbedding(url, init);
    } catch (error) {
      return this.finish(ticket, null, null, new Unavailable('load-failed', String(error.message || error)));
    }
    return this.attach(ticket, embedding);
  }

  /** A new image whose embedding ({header, data}) the page already has. Resolves to the new state. */
  async useEmbedding(embedding) {
    return this.attach(this.begin(), embedding);
  }

  /** The toggle. Returns the new state. */
  setEnabled(on) {
    this.enabled = Boolean(on);
    return this.announce();
  }

  /** Masks for a prompt on the current image (see BrowserDecoder.decode); throws Unavailable when not ready. */
  async decode(prompt) {
    if (!this.ready) throw this.failure || new Unavailable(this.enabled ? 'load-failed' : 'off', this.state);
    return this.decoder.decode(this.embedding, prompt);
  }

  begin() {
    Object.assign(this, {loading: true, embedding: null, decoder: null, failure: null});
    this.announce();
    return ++this.ticket;
  }

  async attach(ticket, embedding) {
    const name = embedding.header.decoder;
    const url = new URL(name, new URL(this.decoderBase, document.baseURI)).href;
    if (!this.decoders.has(name)) this.decoders.set(name, BrowserDecoder.open(this.ortUrl, url, this.runtime));
    try {
      const decoder = await this.decoders.get(name);
      decoder.prepared(embedding).catch(() => {}); // the image side now, not on the first hover (errors: on decode)
      return this.finish(ticket, embedding, decoder, null);
    } catch (error) {
      this.decoders.delete(name); // a later image may try again
      const unavailable = error instanceof Unavailable ? error : new Unavailable('load-failed', String(error));
      return this.finish(ticket, null, null, unavailable);
    }
  }

  finish(ticket, embedding, decoder, failure) {
    if (ticket !== this.ticket) return this.state; // a newer image was asked for meanwhile
    Object.assign(this, {loading: false, embedding, decoder, failure});
    return this.announce();
  }

  announce() {
    let state = 'idle', reason = null, message = '';
    if (!this.enabled) [state, reason, message] = ['fallback', 'off', REASONS.off];
    else if (this.failure) [state, reason, message] = ['fallback', this.failure.reason, this.failure.message];
    else if (this.decoder && this.embedding) state = 'ready';
    else if (this.loading) state = 'loading';
    if (state !== this.state || reason !== this.reason) {
      Object.assign(this, {state, reason});
      this.dispatchEvent(new CustomEvent(DECODER_EVENT, {detail: {state, reason, message}}));
    }
    return state;
  }
}
