"""Data: the task-neutral example schema, dataset readers and builders.

``schema`` (Example, JSONL I/O, DataError), ``common`` (helpers the builders share),
``fetch`` (downloading MovieLens-100K), the readers and builders of sequential
recommendation (``movielens``, ``next_item``) and of multi-hop QA passage pools (``qa``,
``passages``), ``build`` (the dataset a PrepareConfig names, and its manifest), ``splits``
(reading a prepared folder), ``toy``. Only the schema is re-exported here, so importing it
stays cheap (no numpy).
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
