"""Per-session state and files (webapp.sessions), the example images' cached copies, and the heavy lane."""

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from gradio.route_utils import delete_files_created_by_app

import app
from mobile_sam.utils.cancel import Cancelled
from webapp.model_store import ModelStore
from webapp.parts import Parts
from webapp.scheduling import HeavyLane, JobControl, LaneFull, Priority
from webapp.segment import SegmentState


def _request(name: str) -> SimpleNamespace:
    return SimpleNamespace(session_hash=name)


def _disk_use(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def parts() -> Parts:
    config = app.AppConfig(random_weights=True, max_image_side=512, session_disk_mb=1)
    return Parts.create(config, ModelStore("cpu", download=False))


def _state_with_mask(seed: int) -> SegmentState:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)  # noise: PNGs that do not compress
    mask = np.zeros((1, 300, 400), bool)
    mask[0, 50:250, 60:340] = True
    return SegmentState(image=image, display=image, name=f"photo{seed}", masks=mask, scores=np.array([0.9]))


def test_session_files_disappear_when_the_session_ends(parts):
    request = _request("visitor-a")
    paths = [Path(p) for p in parts.segment.write_downloads(_state_with_mask(0), request)]
    assert all(p.is_file() for p in paths)
    other = [Path(p) for p in parts.segment.write_downloads(_state_with_mask(1), _request("visitor-b"))]
    parts.sessions.end(request)
    assert not any(p.exists() for p in paths) and all(p.is_file() for p in other)


def test_disk_use_stays_under_the_cap_across_20_sessions(parts):
    cap = parts.sessions.max_bytes
    for index in range(20):
        parts.segment.write_downloads(_state_with_mask(index), _request(f"visitor-{index}"))
        assert _disk_use(parts.sessions.root) <= cap
    newest = parts.segment.write_downloads(_state_with_mask(99), _request("visitor-new"))
    assert all(Path(p).is_file() for p in newest)  # the newest result survives; the oldest went first


def test_idle_sessions_are_swept(parts):
    sessions = parts.sessions
    request = _request("idle-visitor")
    paths = parts.segment.write_downloads(_state_with_mask(3), request)
    sessions.session(request).last_seen -= sessions.ttl_s + 1
    sessions.sweep()
    assert not Path(paths[0]).exists()


def test_quick_clicks_of_one_session_all_count(parts, tmp_path):
    from PIL import Image

    path = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(path)
    session = parts.sessions.session(_request("clicker"))
    session.state["segment"] = parts.segment.load_image(str(path), True)

    def click(x: float) -> None:
        with session.lock:
            session.state["segment"] = parts.segment.click(session.state["segment"], "Foreground point", x, 10, True)

    threads = [threading.Thread(target=click, args=(5.0 + 10 * i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(session.state["segment"].clicks.points) == 5


def test_example_copies_survive_the_cache_cleaning():
    demo = app.build_app(app.AppConfig(random_weights=True), ModelStore("cpu", download=False))
    copies = set().union(*demo.temp_file_sets)
    assert copies  # Gradio copied the examples into its cache
    delete_files_created_by_app(demo, age=0)  # what delete_cache does once its age has passed
    assert all(Path(p).is_file() for p in copies)


def test_the_heavy_lane_runs_a_bounded_number_and_refuses_beyond_its_line():
    lane = HeavyLane(workers=1, queue_size=1)
    running, release, positions = threading.Event(), threading.Event(), []

    def hold() -> None:
        with lane.slot(JobControl()):
            running.set()
            release.wait(10)

    first = threading.Thread(target=hold)
    first.start()
    assert running.wait(10)
    waiter_control = JobControl()
    waiter = threading.Thread(target=lambda: _enter(lane, waiter_control, positions))
    waiter.start()
    time.sleep(0.5)
    with pytest.raises(LaneFull, match="busy"):
        with lane.slot(JobControl()):
            pass
    assert positions and positions[-1] == 1 and lane.load() == (1, 1)
    waiter_control.cancel()  # a cancelled waiter leaves the line
    waiter.join(5)
    release.set()
    first.join(5)
    assert lane.load() == (0, 0)


def _enter(lane: HeavyLane, control: JobControl, positions: list) -> None:
    try:
        with lane.slot(control, positions.append):
            pass
    except Cancelled:
        positions.append("cancelled")


def test_heavy_jobs_pause_between_batches_while_a_click_runs():
    priority = Priority(max_pause_s=5.0)
    control = JobControl(priority)
    waited = []
    with priority.interactive():
        checker = threading.Thread(target=lambda: waited.append(_timed(control.is_set)))
        checker.start()
        time.sleep(0.3)
    checker.join(5)
    assert waited and waited[0] >= 0.25  # the job's batch check waited for the click
    control.cancel()
    assert control.is_set()


def _timed(fn) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start
