"""The options every ``sofia-qa`` command shares (index, store, embedding model) and the Settings they give."""

from __future__ import annotations

import argparse
from pathlib import Path

from ingestion.config import Settings


def add_common_options(p: argparse.ArgumentParser) -> None:
    """--db, --chroma-url, --collection and --embed-model, each overriding its ``SOFIA_QA_*`` variable."""
    p.add_argument("--db", type=Path, help="index location (SOFIA_QA_DB)")
    p.add_argument("--chroma-url", help="use a Chroma server instead of the embedded store (SOFIA_QA_CHROMA_URL)")
    p.add_argument("--collection", help="collection name (SOFIA_QA_COLLECTION)")
    p.add_argument("--embed-model", help="embedding model (SOFIA_QA_EMBED_MODEL)")


def settings_from(args: argparse.Namespace) -> Settings:
    """``Settings`` from the environment, then the common options given on the command line."""
    return Settings.from_env(db=args.db, chroma_url=args.chroma_url, collection=args.collection,
                             embed_model=args.embed_model)
