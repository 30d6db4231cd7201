"""The index: SQLite as the source of truth (store) and the derived search structures a backend
publishes from it (local files: FAISS + BM25 per generation)."""
