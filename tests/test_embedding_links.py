"""Links to the visitors' embedding files (webapp/embedding_links.py): one live, unguessable link per session;
a newer image, a revoked or ended session, an unknown token and a deleted file all get a clear 404; a live link
asked for by another session, or by a request naming no session, gets a clear 403."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from webapp.embedding_links import EXPIRED, NOT_YOURS, SESSION_HEADER, EmbeddingLinks


@pytest.fixture
def served(tmp_path):
    links = EmbeddingLinks()
    client = TestClient(Starlette(routes=[links.route()]))

    def file(name: str) -> str:
        path = tmp_path / name
        path.write_bytes(name.encode() * 10)
        return str(path)

    return links, client, file


def _refused(response: httpx.Response) -> bool:
    return response.status_code == 404 and response.text == EXPIRED


def _as(session: str) -> dict[str, str]:
    return {SESSION_HEADER: session}


def test_a_published_file_is_served_privately(served):
    links, client, file = served
    url = links.publish("alice", file("a.bin"))
    response = client.get(url, headers=_as("alice"))
    assert response.status_code == 200 and response.content == b"a.bin" * 10
    assert response.headers["cache-control"] == "private, no-store"
    assert response.headers["cross-origin-resource-policy"] == "same-origin"
    token = url.rsplit("/", 1)[1]
    assert len(token) >= 43 and token != links.publish("bob", file("b.bin")).rsplit("/", 1)[1]


def test_a_newer_image_expires_the_older_link_of_that_session_only(served):
    links, client, file = served
    old = links.publish("alice", file("a1.bin"))
    other = links.publish("bob", file("b.bin"))
    new = links.publish("alice", file("a2.bin"))
    assert _refused(client.get(old, headers=_as("alice")))
    assert client.get(new, headers=_as("alice")).content == b"a2.bin" * 10
    assert client.get(other, headers=_as("bob")).status_code == 200


def test_revoked_sessions_unknown_tokens_and_deleted_files_are_refused(served, tmp_path):
    links, client, file = served
    revoked = links.publish("alice", file("a.bin"))
    links.revoke("alice")
    deleted = links.publish("bob", file("b.bin"))
    (tmp_path / "b.bin").unlink()  # the session's files were deleted
    for url, session in ((revoked, "alice"), (deleted, "bob"), ("/mobile-sam/embeddings/guess", "alice")):
        response = client.get(url, headers=_as(session))
        assert _refused(response) and response.headers["cache-control"] == "no-store"
    assert client.get("/mobile-sam/embeddings/..%2Fa.bin").status_code == 404


def test_a_live_link_is_served_to_its_own_session_only(served):
    links, client, file = served
    url = links.publish("alice", file("a.bin"))
    for headers in ({}, _as("bob"), _as("")):
        response = client.get(url, headers=headers)
        assert response.status_code == 403 and response.text == NOT_YOURS
        assert response.headers["cache-control"] == "no-store"
    assert client.get(url, headers=_as("alice")).status_code == 200  # refusals do not expire the link


def test_the_session_header_is_read_as_a_session_id():
    links = EmbeddingLinks(session_key=lambda claimed: claimed.upper())
    client = TestClient(Starlette(routes=[links.route()]))
    assert client.get(links.publish("ALICE", __file__), headers=_as("alice")).status_code == 200
