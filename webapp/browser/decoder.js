// The mask decoder in the page: an onnxruntime-web session of the decoder file webapp/decoder_cache.py serves
// (mobile_sam.onnx.export.export_low_res_decoder), run on an embedding file's data.

import {graphInputs, promptGroups} from './prompts.js';
import {Unavailable, loadOrt} from './runtime.js';

// mobile_sam.onnx.files.LOW_RES_DECODER_INPUTS / _OUTPUTS.
export const INPUTS = ['image_embeddings', 'point_coords', 'point_labels'];
export const OUTPUTS = ['iou_predictions', 'low_res_masks'];

export class BrowserDecoder {
  /**
   * Load onnxruntime-web from ortUrl and the decoder file at decoderUrl.
   * Rejects with Unavailable: 'no-simd', 'load-failed', or 'unsupported-model' (a graph of other inputs/outputs).
   */
  static async open(ortUrl, decoderUrl, options = {}) {
    const ort = await loadOrt(ortUrl, options);
    let session;
    try {
      session = await ort.InferenceSession.create(decoderUrl, {executionProviders: ['wasm'], graphOptimizationLevel: 'all'});
    } catch (error) {
      throw new Unavailable('load-failed', String(error && error.message || error));
    }
    const same = (a, b) => a.length === b.length && a.every((name, i) => name === b[i]);
    if (!same(session.inputNames, INPUTS) || !same(session.outputNames, OUTPUTS)) {
      await session.release();
      throw new Unavailable('unsupported-model', `inputs ${session.inputNames}, outputs ${session.outputNames}`);
    }
    return new BrowserDecoder(ort, session, decoderUrl);
  }

  constructor(ort, session, url) {
    this.ort = ort;
    this.session = session;
    this.url = url;
    this.last = Promise.resolve(); // runs go one at a time (a session runs one call at a time)
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
    const {coords, labels, count} = graphInputs(group, embedding.header);
    const feeds = {
      // A copy: with env.wasm.proxy, onnxruntime-web's worker takes the inputs' buffers over.
      image_embeddings: new this.ort.Tensor('float32', embedding.data.slice(), embedding.header.shape),
      point_coords: new this.ort.Tensor('float32', coords, [1, count, 2]),
      point_labels: new this.ort.Tensor('float32', labels, [1, count]),
    };
    const run = this.last.then(() => this.session.run(feeds));
    this.last = run.catch(() => {});
    const outputs = await run;
    return {scores: outputs.iou_predictions.data, lowRes: outputs.low_res_masks.data};
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
  }
}

function argmax(values) {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}
