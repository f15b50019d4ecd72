// The page's decoder worker: one DecoderEngine (decoder.js), driven by BrowserDecoder's messages
// {id, type: 'open' | 'prepare' | 'decode' | 'release', ...}; each is answered {id, result} or {id, error}.

import {DecoderEngine} from './decoder.js';

let engine = null;

const handlers = {
  async open({ortUrl, decoderUrl, threads}) {
    engine = await DecoderEngine.open(ortUrl, decoderUrl, threads);
    return [{threads: engine.threads}, []];
  },
  async prepare({key, data, dims}) {
    await engine.prepare(key, data, dims);
    return [null, []];
  },
  async decode({key, coords, labels, count, inputSize}) {
    const result = await engine.decode(key, coords, labels, count, inputSize);
    return [result, [result.lowRes.buffer]];
  },
  async release() {
    await engine?.release();
    engine = null;
    return [null, []];
  },
};

self.onmessage = async ({data: {id, type, ...args}}) => {
  try {
    const [result, transfer] = await handlers[type](args);
    self.postMessage({id, result}, transfer);
  } catch (error) {
    self.postMessage({id, error: {reason: error.reason || null, message: String(error && error.message || error)}});
  }
};
