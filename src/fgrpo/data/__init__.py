"""Data: the task-neutral example schema, dataset builders and the ``prepare`` step.

``schema`` (Example, JSONL I/O, DataError), ``movielens`` (sequential recommendation),
``qa`` (multi-hop QA passage pools), ``prepare`` (PrepareConfig, run_prepare). Only the
schema is re-exported here, so importing it stays cheap (no numpy).
"""

from fgrpo.data.schema import (
    Candidate,
    DataError,
    Example,
    example_from_json,
    iter_jsonl,
    read_jsonl,
    write_jsonl,
)

__all__ = [
    "Candidate",
    "DataError",
    "Example",
    "example_from_json",
    "iter_jsonl",
    "read_jsonl",
    "write_jsonl",
]
