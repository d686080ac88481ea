"""Recommending look-alikes: embeddings, the similarity index, retrieval metrics,
near-duplicates and re-ranking for variety (notebook 05)."""
