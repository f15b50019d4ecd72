// Hover preview: the mask under the cursor while the mouse moves. Moves are throttled; at most one decode runs at a
// time, and while it runs only the latest move waits (older ones are dropped, never queued); a result is drawn
// only if the mouse has not left (and the preview was not turned off) since its move.

export class HoverPreview {
  /**
   * decode(x, y): Promise of the preview for the cursor at image pixel (x, y).
   * draw(result, move): show a result (null: clear); move is {x, y, time} of the move it answers.
   * onError(error): a decode failed (the preview stays cleared).
   * throttleMs: least time between the starts of two decodes.
   */
  constructor({decode, draw, onError = () => {}, throttleMs = 15}) {
    Object.assign(this, {decode, draw, onError, throttleMs});
    this.enabled = true;
    this.pending = null;
    this.inFlight = false;
    this.timer = null;
    this.lastStart = -Infinity;
    this.generation = 0;
    this.stats = {moves: 0, decodes: 0, dropped: 0, drawn: 0};
  }

  /** The cursor is at image pixel (x, y). */
  move(x, y) {
    if (!this.enabled) return;
    this.stats.moves++;
    if (this.pending) this.stats.dropped++;
    this.pending = {x, y, time: performance.now(), generation: this.generation};
    this.schedule();
  }

  /** The cursor left the image: forget the waiting move, ignore the running decode's result, clear. */
  leave() {
    this.generation++;
    if (this.pending) this.stats.dropped++;
    this.pending = null;
    clearTimeout(this.timer);
    this.timer = null;
    this.draw(null, null);
  }

  /** The toggle: off clears the preview and ignores moves until turned on again. */
  setEnabled(on) {
    if (!on) this.leave();
    this.enabled = Boolean(on);
  }

  /** Resolves when no decode runs and none waits (tests and benchmarks). */
  async idle() {
    while (this.inFlight || this.pending || this.timer !== null) await new Promise((done) => setTimeout(done, 5));
  }

  schedule() {
    if (this.inFlight || this.timer !== null || !this.pending) return;
    const wait = this.lastStart + this.throttleMs - performance.now();
    if (wait > 0) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.schedule();
      }, wait);
      return;
    }
    this.run(this.pending);
  }

  async run(move) {
    this.pending = null;
    this.inFlight = true;
    this.lastStart = performance.now();
    this.stats.decodes++;
    try {
      const result = await this.decode(move.x, move.y);
      if (move.generation === this.generation && this.enabled) {
        this.draw(result, move);
        this.stats.drawn++;
      }
    } catch (error) {
      if (move.generation === this.generation) this.onError(error);
    } finally {
      this.inFlight = false;
      this.schedule();
    }
  }
}

/**
 * Feed an element's mouse moves to a HoverPreview; toImage(event) gives image pixel [x, y], or null off the image
 * (which counts as leaving). Returns a function that detaches the listeners.
 */
export function attachHover(element, preview, toImage) {
  const onMove = (event) => {
    const point = toImage(event);
    if (point) preview.move(point[0], point[1]);
    else preview.leave();
  };
  const onLeave = () => preview.leave();
  element.addEventListener('mousemove', onMove, {passive: true});
  element.addEventListener('mouseleave', onLeave, {passive: true});
  return () => {
    element.removeEventListener('mousemove', onMove);
    element.removeEventListener('mouseleave', onLeave);
  };
}
