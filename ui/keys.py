"""Session-state keys, in one place. Widget keys bound to the URL are also query-parameter names.

Page-specific keys carry the page's prefix (``cmp_`` compare, ``corpus_`` corpus); keys bound to the
URL are short because they appear in shared links.
"""

from __future__ import annotations

# -- shared by every page ------------------------------------------------------------------------------
ACTIVE_CORPUS = "active_corpus"  # ui.corpus_state.ActiveCorpus: what every page works on
CORPUS_NOTICE = "corpus_notice"  # (kind, message) shown once on the next run of the corpus page
SECRET_PREFIX = "secret_"  # + secret name: password fields, this session only, never in the URL
OPENAI_KEY = SECRET_PREFIX + "OPENAI_API_KEY"
COHERE_KEY = SECRET_PREFIX + "COHERE_API_KEY"

# -- compare page: widgets bound to the URL (the key is the query-parameter name) ---------------------
Q = "q"
FIRST_STAGE = "first_stage"
DEPTH = "depth"
SHOW = "k"
METHODS = "methods"
MODEL_PREFIX = "model_"  # + method name, e.g. "model_cross-encoder"

# -- compare page: session only ------------------------------------------------------------------------
CMP_RESULTS = "cmp_results"  # dict: comparison key -> Comparison (a small LRU)
CMP_HIGHLIGHT = "cmp_highlight"
CMP_GRADE_MODE = "cmp_grade_mode"  # show the grade buttons under every row

# -- corpus page -----------------------------------------------------------------------------------------
CORPUS_UPLOADS = "corpus_uploads"
CORPUS_CHUNK_MODE = "corpus_chunk_mode"
CORPUS_CHUNK_SIZE = "corpus_chunk_size"
CORPUS_CHUNK_OVERLAP = "corpus_chunk_overlap"
CORPUS_CSV_PREFIX = "corpus_csv_"  # + role ("id", "title", "text")
CORPUS_LAST_REPORT = "corpus_last_report"  # the last load's report, for the page to show


def model_key(method: str) -> str:
    return MODEL_PREFIX + method


def secret_key(name: str) -> str:
    """The session key of the password field of secret ``name`` (``OPENAI_API_KEY``)."""
    return SECRET_PREFIX + name
