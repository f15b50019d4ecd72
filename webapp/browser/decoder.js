// The mask decoder in the page: onnxruntime-web sessions of the decoder files webapp/decoder_cache.py serves
// (mobile_sam.onnx.low_res.export_low_res_decoder): the image side, run once per embedding file, then the prompts'
// graph on its outputs for every decode.

import {graphInputs, promptGroups} from './prompts.js';
import {Unavailable, loadOrt} from './runtime.js';

// mobile_sam.onnx.files.IMAGE_SIDE_INPUTS / _OUTPUTS and LOW_RES_DECODER_INPUTS / _OUTPUTS.
export const IMAGE_SIDE_INPUTS = ['image_embeddings'];
export const IMAGE_SIDE_OUTPUTS = ['image_tokens', 'first_keys', 'first_values', 'first_queries'];
export const INPUTS = [...IMAGE_SIDE_OUTPUTS, 'point_coords', 'point_labels', 'input_size'];
export const OUTPUTS = ['iou_predictions', 'low_res_masks'];

/** The image side's file beside a decoder file (mobile_sam.onnx.low_res.image_side_path). */
export function imageSideUrl(decoderUrl) {
  return decoderUrl.replace(/\.onnx$/, '.image.onnx');
}

export class BrowserDecoder {
  /**
   * Load onnxruntime-web from ortUrl and the decoder file at decoderUrl.
   * Rejects with Unavailable: 'no-simd', 'load-failed', or 'unsupported-model' (a graph of other inputs/outputs).
   */
  static async open(ortUrl, decoderUrl, options = {}) {
    const ort = await loadOrt(ortUrl, options);
    const create = async (url, inputs, outputs) => {
      let session;
      try {
        session = await ort.InferenceSession.create(url, {executionProviders: ['wasm'], graphOptimizationLevel: 'all'});
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
    return new BrowserDecoder(ort, session, imageSide, decoderUrl);
  }

  constructor(ort, session, imageSide, url) {
    this.ort = ort;
    this.session = session;
    this.imageSide = imageSide;
    this.url = url;
    this.last = Promise.resolve(); // runs go one at a time (a session runs one call at a time)
    this.images = new WeakMap(); // embedding -> Promise of its image side's outputs
  }

  /** Threads the session runs with (1 unless the page is cross-origin isolated). */
  get threads() {
    return this.ort.env.wasm.numThreads;
  }

  /**
   * Decode one prompt group ({points, labels, box}, original image pixels) on an embedding ({header, data}).
   * Returns {scores: Float32Array(4), lowRes: Float32Array(4 * 256 * 256)}: the single-mask output, then the three
   * multimask outputs (mobile_sam.utils.onnx.SamLowResOnnxModel).
   */
  async decodeGroup(embedding, group) {
    const prepared = await this.prepared(embedding);
    const {coords, labels, count} = graphInputs(group, embedding.header);
    const feeds = {
      point_coords: new this.ort.Tensor('float32', coords, [1, count, 2]),
      point_labels: new this.ort.Tensor('float32', labels, [1, count]),
      input_size: new this.ort.Tensor('float32', Float32Array.from(embedding.header.input_size), [2]),
    };
    // Copies: with env.wasm.proxy, onnxruntime-web's worker takes the inputs' buffers over.
    for (const name of IMAGE_SIDE_OUTPUTS) feeds[name] = new this.ort.Tensor('float32', prepared[name].data.slice(), prepared[name].dims);
    const outputs = await this.queue(() => this.session.run(feeds));
    return {scores: outputs.iou_predictions.data, lowRes: outputs.low_res_masks.data};
  }

  /** The image side's outputs for an embedding ({name: {data, dims}}), computed on its first decode. */
  prepared(embedding) {
    if (!this.images.has(embedding)) {
      const feeds = {image_embeddings: new this.ort.Tensor('float32', embedding.data.slice(), embedding.header.shape)};
      const run = this.queue(() => this.imageSide.run(feeds)).then((outputs) =>
        Object.fromEntries(IMAGE_SIDE_OUTPUTS.map((name) => [name, {data: outputs[name].data, dims: outputs[name].dims}])));
      run.catch(() => this.images.delete(embedding)); // a later decode may try again
      this.images.set(embedding, run);
    }
    return this.images.get(embedding);
  }

  /** Run task() after the runs queued before it. */
  queue(task) {
    const run = this.last.then(task);
    this.last = run.catch(() => {});
    return run;
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

  async release() {
    await this.session.release();
    await this.imageSide.release();
  }
}

function argmax(values) {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}
