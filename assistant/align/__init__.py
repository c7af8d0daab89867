"""Proposal vs Sofia RIS3 priorities: text -> ``AlignmentReport`` (one row per priority), no language model."""

from .check import align, align_file
from .citations import strategy_citation, strategy_citations
from .cli import cmd_align, register
from .priorities import (DEFAULT_FILE, LEVELS, Example, Level, Priorities, PrioritiesError, Priority, load_examples,
                         load_priorities, parse_priorities)
from .report import AlignmentReport, AlignmentRow, summarize
from .scoring import BACKGROUND, PARTIAL_Z, STRONG_Z, example_votes, level, score_sentences
from .sentences import split_sentences

__all__ = ["align", "align_file", "strategy_citation", "strategy_citations", "cmd_align", "register",
           "DEFAULT_FILE", "LEVELS", "Example", "Level", "Priorities", "PrioritiesError", "Priority", "load_examples",
           "load_priorities", "parse_priorities", "AlignmentReport", "AlignmentRow", "summarize", "BACKGROUND",
           "PARTIAL_Z", "STRONG_Z", "example_votes", "level", "score_sentences", "split_sentences"]
