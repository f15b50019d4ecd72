// Prompts -> the decoder graph's inputs, as the server does it (mobile_sam.prompts.Prompts.groups and
// SamPredictor's prompt handling). A prompt is {points: [[x, y], ...], labels: [1 | 0, ...], boxes: [[x0, y0, x1,
// y1], ...]} in original image pixels, the app API's form.

export const PADDING_LABEL = -1;
export const BOX_LABELS = [2, 3];

/**
 * The decoder calls a prompt needs, as mobile_sam.prompts.Prompts.groups: with at most one box, one group of
 * every point and the box; with several boxes, one group per box with the points inside it (points outside
 * every box are not used). Boxes get their corners ordered.
 */
export function promptGroups({points = [], labels = [], boxes = []}) {
  const ordered = boxes.map(([x0, y0, x1, y1]) => [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)]);
  if (ordered.length <= 1) return [{points, labels, box: ordered[0] || null}];
  return ordered.map((box) => {
    const inside = points.map(([x, y], i) => [x, y, i]).filter(([x, y]) => x >= box[0] && x <= box[2] && y >= box[1] && y <= box[3]);
    return {points: inside.map(([x, y]) => [x, y]), labels: inside.map(([, , i]) => labels[i]), box};
  });
}

/**
 * One group -> {coords: Float32Array (N * 2), labels: Float32Array (N), count: N} in the encoder's input frame
 * (ResizeLongestSide.apply_coords with the embedding's sizes): the points, then the box corners labelled 2 and 3,
 * or one padding point (0, 0) labelled -1 when there is no box, as SAM's prompt encoder does.
 */
export function graphInputs({points, labels, box}, {original_size: [height, width], input_size: [inputH, inputW]}) {
  const sx = inputW / width, sy = inputH / height;
  const xy = points.map(([x, y]) => [x * sx, y * sy]);
  const kinds = [...labels];
  if (box) {
    xy.push([box[0] * sx, box[1] * sy], [box[2] * sx, box[3] * sy]);
    kinds.push(...BOX_LABELS);
  } else {
    xy.push([0, 0]);
    kinds.push(PADDING_LABEL);
  }
  return {coords: Float32Array.from(xy.flat()), labels: Float32Array.from(kinds), count: kinds.length};
}
