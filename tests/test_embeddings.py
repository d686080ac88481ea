"""Embedding helpers that need no model: the upload's file embedder."""

from __future__ import annotations

from fashion_utils.recommend import embeddings


def test_file_embedder_is_embed_image_files_bound_to_a_model(monkeypatch):
    calls = []
    monkeypatch.setattr(embeddings, "embed_image_files",
                        lambda paths, *, model, image_size: calls.append((paths, model, image_size)))
    embed = embeddings.file_embedder(model="m", image_size=96)
    embed(["a.png"])
    assert calls == [(["a.png"], "m", 96)]
