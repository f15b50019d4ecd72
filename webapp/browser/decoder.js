// The mask decoder in the page: onnxruntime-web sessions of the decoder files webapp/decoder_cache.py serves
// (mobile_sam.onnx.low_res.export_low_res_decoder): the image side, run once per embedding, then the prompts'
// graph on its outputs for every decode. They run in the page's decoder worker (decoder_worker.js), which keeps
// each image side's outputs where the decodes read them: a decode sends the prompt and gets the low-res logits back,
// never the image side's tens of MB (onnxruntime-web's own proxy worker would take them over on every run).

import {graphInputs, promptGroups} from './prompts.js';
import {Unavailable, absoluteUrl, hasWasmSimd, loadOrt, threadCount} from './runtime.js';

// mobile_sam.onnx.files.IMAGE_SIDE_INPUTS / _OUTPUTS and LOW_RES_DECODER_INPUTS / _OUTPUTS.
export const IMAGE_SIDE_INPUTS = ['image_embeddings'];
export const IMAGE_SIDE_OUTPUTS = [
  'first_keys', 'first_values', 'first_queries', 'own_norm_0', 'own_norm_1', 'cross_0_0', 'cross_bias_0_0',
  'cross_1_0', 'cross_bias_1_0', 'cross_1_1', 'cross_bias_1_1', 'offset_cross_1_0', 'own_keys_1', 'own_values_1',
  'own_queries_1', 'own_keys_2', 'own_values_2', 'final_projection',
];
export const INPUTS = [...IMAGE_SIDE_OUTPUTS, 'point_coords', 'point_labels', 'input_size'];
export const OUTPUTS = ['iou_predictions', 'low_res_masks'];
// Image sides an engine keeps (a page decodes one image at a time; an older one is prepared again if asked for).
const KEPT_IMAGES = 2;
// onnxruntime's session options. With threads, its pool sleeps between parallel sections instead of spinning, and
// splits work into blocks taken on demand: on a machine whose cores the page and the browser also need, a spinning
// or preempted thread otherwise stalls every parallel op. GELU is computed with its tanh form (onnxruntime's
// FastGelu), which its WebAssembly build runs in under half the time of the erf form: the upscaling's GELUs were a
// quarter of a decode; logits move by about 1e-4 (README, Performance).
export const SESSION_OPTIONS = {
  executionProviders: ['wasm'],
  graphOptimizationLevel: 'all',
  extra: {
    session: {intra_op: {allow_spinning: '0'}, dynamic_block_base: '4'},
    optimization: {enable_gelu_approximation: '1'},
  },
};

/** The image side's file beside a decoder file (mobile_sam.onnx.low_res.image_side_path). */
export function imageSideUrl(decoderUrl) {
  return decoderUrl.replace(/\.onnx$/, '.image.onnx');
}

/** The two sessions of a decoder file and the image sides they prepared: runs wherever it is created. */
export class DecoderEngine {
  /** Rejects with Unavailable: 'no-simd', 'load-failed', or 'unsupported-model' (a graph of other inputs/outputs). */
  static async open(ortUrl, decoderUrl, threads) {
    const ort = await loadOrt(ortUrl, {threads});
    const create = async (url, inputs, outputs) => {
      let session;
      try {
        session = await ort.InferenceSession.create(url, SESSION_OPTIONS);
      } catch (error) {
        throw new Unavailable('load-failed', String(error && error.message || error));
      }
      const same = (a, b) => a.length === b.length && a.every((name, i) => name === b[i]);
      if (!same(session.inputNames, inputs) || !same(session.outputNames, outputs)) {
        await session.release();
        throw new Unavailable('unsupported-model', `inputs ${session.inputNames}, outputs ${session.outputNames}`);
      }
      return session;
    };
    const session = await create(decoderUrl, INPUTS, OUTPUTS);
    let imageSide;
    try {
      imageSide = await create(imageSideUrl(decoderUrl), IMAGE_SIDE_INPUTS, IMAGE_SIDE_OUTPUTS);
    } catch (error) {
      await session.release();
      throw error;
    }
    return new DecoderEngine(ort, session, imageSide);
  }

  constructor(ort, session, imageSide) {
    Object.assign(this, {ort, session, imageSide});
    this.last = Promise.resolve(); // runs go one at a time (a session runs one call at a time)
    this.images = new Map(); // key -> the image side's outputs (onnxruntime-web tensors), oldest first
  }

  get threads() {
    return this.ort.env.wasm.numThreads;
  }

  /** Run the image side on an embedding (data: Float32Array, dims) and keep its outputs under key. */
  async prepare(key, data, dims) {
    const outputs = await this.queue(() => this.imageSide.run({image_embeddings: new this.ort.Tensor('float32', data, dims)}));
    this.images.set(key, outputs);
    for (const old of this.images.keys()) if (this.images.size > KEPT_IMAGES) this.images.delete(old);
  }

  /** Whether the image side of key is kept. */
  has(key) {
    return this.images.has(key);
  }

  /** The prompts' graph on key's image side: {scores: Float32Array(4), lowRes: Float32Array(4 * 256 * 256)}. */
  async decode(key, coords, labels, count, inputSize) {
    const prepared = this.images.get(key);
    if (!prepared) throw new Error(`image ${key} is not prepared`);
    const feeds = {
      point_coords: new this.ort.Tensor('float32', coords, [1, count, 2]),
      point_labels: new this.ort.Tensor('float32', labels, [1, count]),
      input_size: new this.ort.Tensor('float32', inputSize, [2]),
    };
    for (const name of IMAGE_SIDE_OUTPUTS) feeds[name] = prepared[name];
    const outputs = await this.queue(() => this.session.run(feeds));
    return {scores: outputs.iou_predictions.data, lowRes: outputs.low_res_masks.data};
  }

  /** Run task() after the runs queued before it. */
  queue(task) {
    const run = this.last.then(task);
    this.last = run.catch(() => {});
    return run;
  }

  async release() {
    this.images.clear();
    await this.session.release();
    await this.imageSide.release();
  }
}

/** A DecoderEngine in the page's decoder worker (decoder_worker.js), with the same methods. */
class WorkerEngine {
  static async open(ortUrl, decoderUrl, threads) {
    if (!hasWasmSimd()) throw new Unavailable('no-simd');
    let worker;
    try {
      worker = new Worker(new URL('./decoder_worker.js', import.meta.url), {type: 'module'});
    } catch (error) {
      throw new Unavailable('load-failed', String(error && error.message || error));
    }
    const engine = new WorkerEngine(worker);
    try {
      engine.threads = (await engine.call('open', {ortUrl: absoluteUrl(ortUrl), decoderUrl, threads})).threads;
    } catch (error) {
      worker.terminate();
      throw error;
    }
    return engine;
  }

  constructor(worker) {
    this.worker = worker;
    this.calls = new Map(); // id -> [resolve, reject]
    this.next = 0;
    this.kept = new Set(); // keys the worker holds, as far as this side knows
    worker.onmessage = ({data: {id, result, error}}) => {
      const [resolve, reject] = this.calls.get(id);
      this.calls.delete(id);
      if (!error) resolve(result);
      else reject(error.reason ? Object.assign(new Unavailable(error.reason), {message: error.message}) : new Error(error.message));
    };
    worker.onerror = (event) => {
      event.preventDefault();
      const failure = new Unavailable('load-failed', String(event.message || 'the decoder worker failed'));
      for (const [, reject] of this.calls.values()) reject(failure);
      this.calls.clear();
    };
  }

  call(type, args = {}, transfer = []) {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.calls.set(id, [resolve, reject]);
      this.worker.postMessage({id, type, ...args}, transfer);
    });
  }

  async prepare(key, data, dims) {
    await this.call('prepare', {key, data, dims}, [data.buffer]);
    this.kept.add(key);
    for (const old of this.kept) if (this.kept.size > KEPT_IMAGES) this.kept.delete(old);
  }

  has(key) {
    return this.kept.has(key);
  }

  decode(key, coords, labels, count, inputSize) {
    return this.call('decode', {key, coords, labels, count, inputSize});
  }

  async release() {
    try {
      await this.call('release');
    } finally {
      this.worker.terminate();
    }
  }
}

export class BrowserDecoder {
  /**
   * Load onnxruntime-web from ortUrl and the decoder file at decoderUrl. options: threads (default threadCount()),
   * proxy (default true: in the page's decoder worker; false: on the page's own thread).
   * Rejects with Unavailable: 'no-simd', 'load-failed', or 'unsupported-model' (a graph of other inputs/outputs).
   */
  static async open(ortUrl, decoderUrl, {threads = threadCount(), proxy = true} = {}) {
    const engine = await (proxy ? WorkerEngine : DecoderEngine).open(ortUrl, absoluteUrl(decoderUrl), threads);
    return new BrowserDecoder(engine, decoderUrl);
  }

  constructor(engine, url) {
    this.engine = engine;
    this.url = url;
    this.images = new WeakMap(); // embedding -> Promise of its key once the engine has prepared it
    this.nextKey = 0;
  }

  /** Threads the decoder runs with (1 unless the page is cross-origin isolated). */
  get threads() {
    return this.engine.threads;
  }

  /**
   * Decode one prompt group ({points, labels, box}, original image pixels) on an embedding ({header, data}).
   * Returns {scores: Float32Array(4), lowRes: Float32Array(4 * 256 * 256)}: the single-mask output, then the three
   * multimask outputs (mobile_sam.utils.onnx.SamLowResOnnxModel).
   */
  async decodeGroup(embedding, group) {
    let key = await this.prepared(embedding);
    if (!this.engine.has(key)) {  // dropped by the engine for newer images: prepare it again
      this.images.delete(embedding);
      key = await this.prepared(embedding);
    }
    const {coords, labels, count} = graphInputs(group, embedding.header);
    return this.engine.decode(key, coords, labels, count, Float32Array.from(embedding.header.input_size));
  }

  /** Prepare an embedding's image side (on its first decode, or ahead of it); resolves to its key. */
  prepared(embedding) {
    if (!this.images.has(embedding)) {
      const key = this.nextKey++;
      const run = this.engine.prepare(key, embedding.data.slice(), embedding.header.shape).then(() => key);
      run.catch(() => this.images.delete(embedding)); // a later decode may try again
      this.images.set(embedding, run);
    }
    return this.images.get(embedding);
  }

  /**
   * The masks the server would show for a prompt ({points, labels, boxes}), as mobile_sam.session.segment with
   * multimask_output=True: one group -> the best-scoring of the three multimask outputs; several boxes -> the
   * single-mask output of each. Returns [{plane: Float32Array(256 * 256), score, index (of the four)}, ...];
   * decodeGroup gives all four outputs (the candidates).
   */
  async decode(embedding, prompt) {
    const groups = promptGroups(prompt);
    const masks = [];
    for (const group of groups) {
      const {scores, lowRes} = await this.decodeGroup(embedding, group);
      const index = groups.length === 1 ? 1 + argmax(scores.subarray(1)) : 0;
      const size = lowRes.length / scores.length;
      masks.push({plane: lowRes.subarray(index * size, (index + 1) * size), score: scores[index], index});
    }
    return masks;
  }

  release() {
    return this.engine.release();
  }
}

function argmax(values) {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}
