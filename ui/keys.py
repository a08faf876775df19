"""Every session-state key of the app, in one place.

Widget keys bound to the URL are also query-parameter names, so they are short (they appear in shared
links). Page-specific keys carry the page's prefix: ``cmp_`` compare, ``corpus_`` corpus, ``bench_``
benchmark, ``lbl_`` labels and the labelling component.
"""

from __future__ import annotations

# -- shared by every page ------------------------------------------------------------------------------
CORPUS = "corpus"  # URL parameter: the id of the stored corpus every page works on
ACTIVE_CORPUS = "active_corpus"  # this session's corpus id (when the URL names none)
SAMPLE_ID = "sample_corpus_id"  # the built-in sample's id, once stored
CORPUS_NOTICE = "corpus_notice"  # (kind, message) shown once on the next run of the corpus page
SECRET_PREFIX = "secret_"  # + secret name: password fields, this session only, never in the URL
SESSION_ID = "session_id"  # a random id of this browser session (whose quota, when nobody signs in)
SIGN_IN = "sign_in"
SIGN_OUT = "sign_out"

# -- compare page: widgets bound to the URL (the key is the query-parameter name) ---------------------
Q = "q"
FIRST_STAGE = "first_stage"
DEPTH = "depth"
SHOW = "k"
METHODS = "methods"
MODEL_PREFIX = "model_"  # + method name, e.g. "model_cross-encoder"
PRECISION_PREFIX = "precision_"  # + method name: its precision option (in the URL)
INSTRUCTION_PREFIX = "instruction_"  # + method name: the instruction of a model that takes one (in the URL)
REMOTE_CODE_PREFIX = "remote_code_"  # + method name: trust_remote_code, this session only (never in the URL)

FUSIONS = "fuse"  # the fusions shown as columns (fusion:A+B or fusion:NAME)

# -- compare page: session only ------------------------------------------------------------------------
CMP_LAST = "cmp_last"  # the comparison drawn last: {"first", "methods", "query_id", "first_stage", "depth"}
CMP_HIGHLIGHT = "cmp_highlight"
CMP_GRADE_MODE = "cmp_grade_mode"  # show the grade buttons under every row
CMP_EXAMPLE = "cmp_example"  # the example-query pills
CMP_PICK_QUERY = "cmp_pick_query"  # the corpus-query picker
CMP_JUDGES = "cmp_judges"  # whose judgements the live metrics use
CMP_ORDER = "cmp_order"  # on a narrow screen: the one order shown (a method spec, or "first")
CMP_STOP = "cmp_stop"  # the Stop button of a running comparison
CMP_STOPPED = "cmp_stopped"  # (query, methods) whose run was stopped: not started again until asked
CMP_RUN_AGAIN = "cmp_run_again"

CMP_OWN_STACK = "cmp_own_stack"  # show the run-file and engine set-up
CMP_RUN_UPLOAD = "cmp_run_upload"  # a run file to use as the first stage
CMP_RUN_NOTICE = "cmp_run_notice"  # (kind, message) about the last upload, shown once

# -- engines typed in the app (Compare and Corpus pages; session only, secrets never here) ------------
ENGINE_OPTIONS = "engine_options"  # {engine: {option: value}}: replaces [methods.<engine>] for this session
ENGINE_CHECKS = "engine_checks"  # {engine: ConnectionCheck} of the last "Test connection"
ENGINE_PICK_PREFIX = "engine_pick_"  # + page ("cmp", "corpus"): the engine whose form is shown
ENGINE_FIELD_PREFIX = "engine_field|"  # + page, engine, option
ENGINE_QUERY_PREFIX = "engine_query|"  # + page, engine: the test query
ENGINE_FORM_PREFIX = "engine_form|"  # + page, engine: the settings form
ENGINE_FORGET_PREFIX = "engine_forget|"  # + page, engine: the button that drops the typed settings

# -- labelling component (any page that grades) -------------------------------------------------------
LBL_JUDGE = "lbl_judge"  # the sidebar judge name (kept for the session across pages)
LBL_NOTICE = "lbl_notice"  # (kind, message) left by a callback for the next run
LBL_GRADE_PREFIX = "lbl_grade|"  # + column, query id, document id
LBL_UNDO = "lbl_undo"
LBL_EXPORT_PREFIX = "lbl_export_"  # + format

# -- labels page -----------------------------------------------------------------------------------------
LBL_CORPUS_ID = "lbl_corpus_id"
LBL_QUERY = "lbl_query"
LBL_FIRST_STAGE = "lbl_first_stage"
LBL_K = "lbl_k"
LBL_QUERIES_TABLE = "lbl_queries_table"
LBL_FILTER_QUERY = "lbl_filter_query"
LBL_JUDGEMENTS_TABLE = "lbl_judgements_table"
LBL_IMPORT_FILE = "lbl_import_file"
LBL_IMPORT_QUERIES = "lbl_import_queries"
LBL_IMPORT_FORMAT = "lbl_import_format"
LBL_IMPORT_JUDGE = "lbl_import_judge"
LBL_IMPORT_GO = "lbl_import_go"
LBL_UNDO_IMPORT = "lbl_undo_import"
LBL_EXPORT_JUDGE = "lbl_export_judge"
LBL_EXPORT_QUERIES = "lbl_export_queries"
LBL_SHADOW_TABLE = "lbl_shadow_table"
LBL_SHADOW_CSV = "lbl_shadow_csv"
LBL_IMPORT_OUTCOME = "lbl_import_outcome"  # (kind, message, hint, warnings) of the last import
LBL_LAST_IMPORT = "lbl_last_import"  # (corpus id, {judge: action id}) of the last import of this session

# -- corpus page -----------------------------------------------------------------------------------------
CORPUS_UPLOADS = "corpus_uploads"  # + the uploader's generation (a new one drops refused files)
CORPUS_UPLOADS_GEN = "corpus_uploads_gen"
CORPUS_CHUNK_MODE = "corpus_chunk_mode"
CORPUS_CHUNK_SIZE = "corpus_chunk_size"
CORPUS_CHUNK_OVERLAP = "corpus_chunk_overlap"
CORPUS_CSV_PREFIX = "corpus_csv_"  # + role ("id", "title", "text")
CORPUS_LAST_REPORT = "corpus_last_report"  # the last load's report, for the page to show
CORPUS_SPLIT = "corpus_beir_split"  # the qrels split of a BEIR zip with several
CORPUS_NAME = "corpus_name"  # the name given to an upload
CORPUS_IMPORT_QRELS = "corpus_import_qrels"
CORPUS_BUILD_WHICH = "corpus_build_which"
CORPUS_BUILD = "corpus_build"
CORPUS_TABLE = "corpus_table"  # the stored-corpora table (row selection)
CORPUS_RENAME = "corpus_rename"
CORPUS_DELETE_LABELS = "corpus_delete_labels"
CORPUS_DELETE = "corpus_delete"
CORPUS_OPEN = "corpus_open"
CORPUS_USE_SAMPLE = "corpus_use_sample"

# -- benchmark page ------------------------------------------------------------------------------------
BENCH_RESULT = "bench_result"  # {"bench": Benchmark, "signature": tuple, "source": str}
BENCH_CANCEL = "bench_cancel_requested"
BENCH_SWEEP = "bench_sweep_depths"
BENCH_SOURCE = "bench_source"
BENCH_FIRST_STAGE = "bench_first_stage"
BENCH_DEPTH = "bench_depth"
BENCH_MAX_QUERIES = "bench_max_queries"
BENCH_METHODS = "bench_methods"
BENCH_MODEL_PREFIX = "bench_model_"  # + method name
BENCH_RUN = "bench_run"
BENCH_CANCEL_BUTTON = "bench_cancel"
BENCH_UNAVAILABLE = "bench_unavailable"
BENCH_TABLE = "bench_table"
BENCH_SCATTER = "bench_scatter"
BENCH_SWEEP_PLOT = "bench_sweep"
BENCH_POLICY = "bench_policy"
BENCH_DOWNLOAD_JSON = "bench_download_json"
BENCH_DOWNLOAD_RUNS = "bench_download_runs"
BENCH_CONCURRENCY = "bench_concurrency"  # queries of a hosted method run at once
BENCH_FUSIONS = "bench_fusions"  # fusions among the methods


def model_key(method: str) -> str:
    return MODEL_PREFIX + method


def precision_key(method: str) -> str:
    return PRECISION_PREFIX + method


def instruction_key(method: str) -> str:
    return INSTRUCTION_PREFIX + method


def remote_code_key(method: str) -> str:
    return REMOTE_CODE_PREFIX + method


def secret_key(name: str) -> str:
    """The session key of the password field of secret ``name`` (``OPENAI_API_KEY``)."""
    return SECRET_PREFIX + name


def grade_key(column: str, query_id: str, doc_id: str) -> str:
    return f"{LBL_GRADE_PREFIX}{column}|{query_id}|{doc_id}"


def engine_pick_key(page: str) -> str:
    return ENGINE_PICK_PREFIX + page


def engine_field_key(page: str, engine: str, option: str) -> str:
    return f"{ENGINE_FIELD_PREFIX}{page}|{engine}|{option}"


def engine_query_key(page: str, engine: str) -> str:
    return f"{ENGINE_QUERY_PREFIX}{page}|{engine}"


def engine_form_key(page: str, engine: str) -> str:
    return f"{ENGINE_FORM_PREFIX}{page}|{engine}"


def engine_forget_key(page: str, engine: str) -> str:
    return f"{ENGINE_FORGET_PREFIX}{page}|{engine}"


# -- answers you can defend: judges, coverage, per-query analysis, cost, reports -----------------------
# compare page
CMP_BASIS = "cmp_basis"  # whose judgements the live metrics rest on (people only / people + an LLM)
CMP_LLM_JUDGE = "cmp_llm_judge"  # the LLM judge that fills the gaps
CMP_JUDGE_MODEL = "cmp_judge_model"  # the model that grades the unjudged shown documents
CMP_JUDGE_GO = "cmp_judge_go"
CMP_REPORT_HTML = "cmp_report_html"
CMP_REPORT_MD = "cmp_report_md"
# benchmark page
BENCH_BASIS = "bench_basis"
BENCH_LLM_JUDGE = "bench_llm_judge"
BENCH_BUDGET_DOLLARS = "bench_budget_dollars"
BENCH_BUDGET_SECONDS = "bench_budget_seconds"
BENCH_PQ_METHOD = "bench_pq_method"  # the reranker whose per-query wins and losses are listed
BENCH_PQ_TABLE = "bench_pq_table"
BENCH_PQ_PLOT = "bench_pq_plot"
BENCH_TAG_TABLE = "bench_tag_table"
BENCH_HIST = "bench_hist"
BENCH_REPORT_HTML = "bench_report_html"
BENCH_REPORT_MD = "bench_report_md"
# labels page
LBL_GUIDELINE = "lbl_guideline"
LBL_GUIDELINE_SAVE = "lbl_guideline_save"
LBL_TAGS_QUERY = "lbl_tags_query"
LBL_TAGS_TEXT = "lbl_tags_text"
LBL_TAGS_SAVE = "lbl_tags_save"
LBL_AGREE_A = "lbl_agree_a"
LBL_AGREE_B = "lbl_agree_b"
LBL_AGREE_PLOT = "lbl_agree_plot"
LBL_JUDGE_MODEL = "lbl_judge_model"
LBL_JUDGE_GO = "lbl_judge_go"
