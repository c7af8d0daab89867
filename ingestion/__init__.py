"""Ingestion: files -> documents -> chunks -> embeddings -> Chroma. Imports nothing else of ours."""
