() => {
  // Box by dragging on the segment-anything canvas: sends [x0, y0, x1, y1] in displayed-image pixels.
  const root = () => document.querySelector('#segment-canvas');
  let start = null, suppressClick = false;
  const toImage = (img, ev) => {
    const r = img.getBoundingClientRect();
    const scale = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight, 1);
    const dx = (r.width - img.naturalWidth * scale) / 2, dy = (r.height - img.naturalHeight * scale) / 2;
    return [Math.round((ev.clientX - r.left - dx) / scale), Math.round((ev.clientY - r.top - dy) / scale)];
  };
  document.addEventListener('mousedown', (ev) => {
    const img = root() && root().querySelector('img');
    if (!img || ev.target !== img) return;
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
      const box = document.querySelector('#segment-drag textarea, #segment-drag input');
      if (box) {
        box.value = JSON.stringify([start.p[0], start.p[1], p[0], p[1]]);
        box.dispatchEvent(new Event('input', {bubbles: true}));
        setTimeout(() => document.querySelector('#segment-drag-apply')?.click(), 50);
        suppressClick = true;
      }
    }
    start = null;
  }, true);
  document.addEventListener('click', (ev) => {
    if (suppressClick) { suppressClick = false; ev.stopPropagation(); ev.preventDefault(); }
  }, true);
}
