() => {
  // Clicks and dragged boxes on the segment-anything canvas, queued in the page and sent in order as JSON
  // [{"click": [x, y]} | {"box": [x0, y0, x1, y1]}, ...] in displayed-image pixels: none is lost while
  // the canvas is redrawn.
  const root = () => document.querySelector('#segment-canvas');
  let start = null, suppressClick = false, queue = [], sending = false;
  const toImage = (img, ev) => {
    const r = img.getBoundingClientRect();
    const scale = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight, 1);
    const dx = (r.width - img.naturalWidth * scale) / 2, dy = (r.height - img.naturalHeight * scale) / 2;
    return [Math.round((ev.clientX - r.left - dx) / scale), Math.round((ev.clientY - r.top - dy) / scale)];
  };
  const send = () => {
    const box = document.querySelector('#segment-drag textarea, #segment-drag input');
    if (sending || !queue.length || !box) return;
    sending = true;
    box.value = JSON.stringify(queue);
    queue = [];
    box.dispatchEvent(new Event('input', {bubbles: true}));
    setTimeout(() => {
      document.querySelector('#segment-drag-apply')?.click();
      setTimeout(() => { sending = false; send(); }, 50);
    }, 50);
  };
  const canvasImage = (ev) => {
    const img = root() && root().querySelector('img');
    return img && ev.target === img ? img : null;
  };
  document.addEventListener('mousedown', (ev) => {
    const img = canvasImage(ev);
    if (!img) return;
    start = {img, x: ev.clientX, y: ev.clientY, p: toImage(img, ev)};
    ev.preventDefault();
  }, true);
  document.addEventListener('mouseup', (ev) => {
    if (!start) return;
    const moved = Math.hypot(ev.clientX - start.x, ev.clientY - start.y);
    const mode = document.querySelector('input[type=radio][value^="Box"]');
    const img = root() && root().querySelector('img');
    if (moved > 6 && mode && mode.checked && img) {
      const p = toImage(img, ev);
      queue.push({box: [start.p[0], start.p[1], p[0], p[1]]});
      send();
      suppressClick = true;
    }
    start = null;
  }, true);
  document.addEventListener('click', (ev) => {
    if (suppressClick) { suppressClick = false; ev.stopPropagation(); ev.preventDefault(); return; }
    const img = canvasImage(ev);
    if (!img) return;
    ev.stopPropagation();
    ev.preventDefault();
    queue.push({click: toImage(img, ev)});
    send();
  }, true);
}
