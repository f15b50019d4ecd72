// Low-res logits (256 x 256) -> a mask at display size, with the geometry of Sam.postprocess_masks: bilinear
// upsampling to the encoder's square input (x4, align_corners=False), crop to the resized image (input_size),
// bilinear resizing to the original size, threshold. Both resizes are linear and separable, so each original
// column (row) is a fixed blend of at most four low-res columns (rows). Display pixel x shows original pixel
// floor(x * original / display), the pixel the server's display picks (webapp.segment.resize_mask: OpenCV's
// INTER_NEAREST), so the page's mask is the server's mask as the server draws it; at display size = original
// size it is exactly postprocess_masks' mask.

/**
 * Per display pixel of one axis, four low-res indices and weights (Int32Array, Float32Array of size * 4).
 * size: display pixels; original: the image's pixels; crop: input_size; lowRes: 256; upscale: image_size / lowRes.
 */
export function axisTaps(size, original, crop, lowRes, upscale) {
  const index = new Int32Array(size * 4), weight = new Float32Array(size * 4);
  // torch's source index for align_corners=False, linear: max(0, scale * (dst + 0.5) - 0.5).
  const source = (dst, scale) => Math.max(0, scale * (dst + 0.5) - 0.5);
  const step = 1 / (size / original); // OpenCV's INTER_NEAREST: source pixel floor(x * step)
  for (let i = 0; i < size; i++) {
    const pixel = Math.min(Math.floor(i * step), original - 1);
    const s = source(pixel, crop / original);
    const s0 = Math.floor(s), s1 = Math.min(s0 + 1, crop - 1), ls = s - s0;
    [[s0, 1 - ls], [s1, ls]].forEach(([inputIndex, w], k) => {
      const t = source(inputIndex, 1 / upscale);
      const t0 = Math.min(Math.floor(t), lowRes - 1), t1 = Math.min(t0 + 1, lowRes - 1), lt = t - Math.floor(t);
      index[i * 4 + 2 * k] = t0;
      weight[i * 4 + 2 * k] = w * (1 - lt);
      index[i * 4 + 2 * k + 1] = t1;
      weight[i * 4 + 2 * k + 1] = w * lt;
    });
  }
  return {index, weight};
}

let lastTaps = {key: null, cols: null, rows: null, wide: null};

/** Both axes' taps and the horizontal pass's buffer for a header and display size (the last ones kept). */
function displayTaps(header, width, height, lowRes) {
  const key = JSON.stringify([header.original_size, header.input_size, header.image_size, width, height, lowRes]);
  if (lastTaps.key !== key) {
    const upscale = header.image_size / lowRes;
    const [inputH, inputW] = header.input_size, [originalH, originalW] = header.original_size;
    lastTaps = {
      key,
      cols: axisTaps(width, originalW, inputW, lowRes, upscale),
      rows: axisTaps(height, originalH, inputH, lowRes, upscale),
      wide: new Float32Array(lowRes * width),
    };
  }
  return lastTaps;
}

/**
 * Mask logits at display size: Float32Array (height * width) from one low-res plane (Float32Array lowRes^2,
 * row-major) of an embedding with header {original_size, input_size, image_size}; written into out if given.
 */
export function displayLogits(plane, header, width, height, out = new Float32Array(width * height)) {
  const lowRes = Math.round(Math.sqrt(plane.length));
  const {cols, rows, wide} = displayTaps(header, width, height, lowRes);
  // Horizontal pass on every low-res row, then the vertical pass per display pixel.
  for (let r = 0; r < lowRes; r++) {
    const row = r * lowRes;
    for (let x = 0; x < width; x++) {
      const k = x * 4;
      wide[r * width + x] = cols.weight[k] * plane[row + cols.index[k]] + cols.weight[k + 1] * plane[row + cols.index[k + 1]]
        + cols.weight[k + 2] * plane[row + cols.index[k + 2]] + cols.weight[k + 3] * plane[row + cols.index[k + 3]];
    }
  }
  for (let y = 0; y < height; y++) {
    const k = y * 4;
    const r0 = rows.index[k] * width, r1 = rows.index[k + 1] * width, r2 = rows.index[k + 2] * width, r3 = rows.index[k + 3] * width;
    const w0 = rows.weight[k], w1 = rows.weight[k + 1], w2 = rows.weight[k + 2], w3 = rows.weight[k + 3];
    for (let x = 0; x < width; x++) {
      out[y * width + x] = w0 * wide[r0 + x] + w1 * wide[r1 + x] + w2 * wide[r2 + x] + w3 * wide[r3 + x];
    }
  }
  return out;
}

/** The binary mask (Uint8Array height * width, 1 inside) above the header's mask_threshold. */
export function displayMask(plane, header, width, height) {
  const logits = displayLogits(plane, header, width, height);
  const mask = new Uint8Array(logits.length);
  const threshold = header.mask_threshold;
  for (let i = 0; i < logits.length; i++) mask[i] = logits[i] > threshold ? 1 : 0;
  return mask;
}

/**
 * The union of several masks (low-res planes of one embedding) drawn into image (an ImageData at display size) in
 * one RGBA colour, transparent outside: displayMask's pixels, without a buffer per mask.
 */
export function paintMasks(planes, header, image, [r, g, b, a] = [30, 144, 255, 128]) {
  const {width, height} = image;
  const pixels = new Uint32Array(image.data.buffer);
  const colour = new Uint32Array(new Uint8ClampedArray([r, g, b, a]).buffer)[0];
  if (logitBuffer.length !== width * height) logitBuffer = new Float32Array(width * height);
  pixels.fill(0);
  const threshold = header.mask_threshold;
  for (const plane of planes) {
    const logits = displayLogits(plane, header, width, height, logitBuffer);
    for (let i = 0; i < logits.length; i++) if (logits[i] > threshold) pixels[i] = colour;
  }
  return image;
}

let logitBuffer = new Float32Array(0);

/** ImageData of the mask in one RGBA colour (transparent outside), for a canvas over the image. */
export function maskImage(mask, width, height, [r, g, b, a] = [30, 144, 255, 128]) {
  const image = new ImageData(width, height);
  const pixels = new Uint32Array(image.data.buffer);
  const colour = new Uint32Array(new Uint8ClampedArray([r, g, b, a]).buffer)[0];
  for (let i = 0; i < mask.length; i++) if (mask[i]) pixels[i] = colour;
  return image;
}
