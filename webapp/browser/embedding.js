// Reader of the embedding file webapp/embedding_file.py writes (the layout is described there):
// magic "SAMEMB01", uint32 header length, JSON header, float16 data at a multiple of 8.

export const MAGIC = 'SAMEMB01';

/** Parse an ArrayBuffer: {header, data: Float32Array of the (1, C, h, w) embedding}. Throws Error on a bad file. */
export function parseEmbedding(buffer) {
  const bytes = new Uint8Array(buffer);
  const magic = String.fromCharCode(...bytes.subarray(0, MAGIC.length));
  if (magic !== MAGIC) throw new Error(`not an embedding file (magic ${JSON.stringify(magic)})`);
  const length = new DataView(buffer).getUint32(MAGIC.length, true);
  const start = MAGIC.length + 4 + length;
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(MAGIC.length + 4, start)));
  if (header.dtype !== 'float16') throw new Error(`unsupported embedding dtype ${header.dtype}`);
  const count = header.shape.reduce((a, b) => a * b, 1);
  if (buffer.byteLength !== start + 2 * count) {
    throw new Error(`embedding file of ${buffer.byteLength} bytes, expected ${start + 2 * count}`);
  }
  return {header, data: float16ToFloat32(new Uint16Array(buffer, start, count))};
}

/** Fetch and parse an embedding file. */
export async function fetchEmbedding(url, init = {}) {
  const response = await fetch(url, init);
  if (!response.ok) throw new Error(`embedding ${url}: HTTP ${response.status}`);
  return parseEmbedding(await response.arrayBuffer());
}

let table = null;

/** IEEE half-precision bits -> Float32Array, through a table of all 65,536 values (built once). */
export function float16ToFloat32(bits) {
  if (table === null) {
    table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const sign = h & 0x8000 ? -1 : 1;
      const exponent = (h >> 10) & 0x1f;
      const fraction = h & 0x3ff;
      if (exponent === 0) table[h] = sign * fraction * 2 ** -24;
      else if (exponent === 31) table[h] = fraction ? NaN : sign * Infinity;
      else table[h] = sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
    }
  }
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]];
  return out;
}
