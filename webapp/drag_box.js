() => {
  // Clicks and dragged boxes on the segment-anything canvas, queued in the page and sent in order as JSON
  // [{"click": [x, y], "id": n} | {"box": [x0, y0, x1, y1], "id": n}, ...] in displayed-image pixels: none is lost
  // while the canvas is redrawn. Each action is also announced on the document as
  // CustomEvent('mobile-sam-action', {detail: {id, click | box, mode}}) for the page's own decoder
  // (webapp/browser/segment_page.js), which shows its mask before the server's arrives; ids grow by one per action.
  const root = () => document.querySelector('#segment-canvas');
  let start = null, queue = [], sending = false, nextId = 1;
  // Where an image shows its pixels: its box on the page and its natural size.
  const frameOf = (img) => ({rect: img.getBoundingClientRect(), width: img.naturalWidth, height: img.naturalHeight});
  const toImage = (frame, ev) => {
    const r = frame.rect;
    const scale = Math.min(r.width / frame.width, r.height / frame.height, 1);
    const dx = (r.width - frame.width * scale) / 2, dy = (r.height - frame.height * scale) / 2;
    return [Math.round((ev.clientX - r.left - dx) / scale), Math.round((ev.clientY - r.top - dy) / scale)];
  };
  const mode = () => document.querySelector('#segment-mode input[type=radio]:checked')?.value || '';
  const send = () => {
    const box = document.querySelector('#segment-drag textarea, #segment-drag input');
    if (sending || !queue.length || !box) return;
    sending = true;
    box.value = JSON.stringify(queue);
    queue = [];
    box.dispatchEvent(new Event('input', {bubbles: true}));
    setTimeout(() => {
      document.querySelector('#segment-drag-apply')?.click();
      setTimeout(() => { sending = false; send(); }, 20);
    }, 0);
  };
  const enqueue = (action) => {
    action.id = nextId++;
    queue.push(action);
    document.dispatchEvent(new CustomEvent('mobile-sam-action', {detail: {...action, mode: mode()}}));
    send();
  };
  const canvasImage = (ev) => {
    const img = root() && root().querySelector('img');
    return img && ev.target === img ? img : null;
  };
  document.addEventListener('mousedown', (ev) => {
    const img = canvasImage(ev);
    if (!img) return;
    const frame = frameOf(img);
    start = {frame, x: ev.clientX, y: ev.clientY, p: toImage(frame, ev)};
    ev.preventDefault();
  }, true);
  const inside = (frame, ev) => {
    const r = frame.rect;
    return ev.clientX >= r.left && ev.clientX <= r.right && ev.clientY >= r.top && ev.clientY <= r.bottom;
  };
  // A click is taken on mouseup, not from the click event: when a server answer swaps the canvas image between
  // mousedown and mouseup, the browser sends that click to neither image, and it would be lost. A new image still
  // loading at mouseup has no size yet: the release is then placed as the press was.
  document.addEventListener('mouseup', (ev) => {
    if (!start) return;
    const moved = Math.hypot(ev.clientX - start.x, ev.clientY - start.y);
    const img = root() && root().querySelector('img');
    const {p: from, frame: pressed} = start;
    start = null;
    if (!img) return;
    const frame = img.naturalWidth && img.naturalHeight ? frameOf(img) : pressed;
    if (moved > 6 && mode().startsWith('Box')) enqueue({box: [from[0], from[1], ...toImage(frame, ev)]});
    else if (inside(frame, ev)) enqueue({click: toImage(frame, ev)});
  }, true);
  document.addEventListener('click', (ev) => {
    if (!canvasImage(ev)) return;
    ev.stopPropagation(); // taken on mouseup
    ev.preventDefault();
  }, true);
}
