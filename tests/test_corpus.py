"""Corpus loading: every format's happy path, and every kind of bad input named in the issue."""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from pathlib import Path

import pytest

from rerank_core.corpus import (
    DEFAULT_MAX_BYTES,
    MAX_WARNINGS_PER_REASON,
    SUPPORTED_EXTENSIONS,
    CsvColumns,
    LoadReport,
    LoadWarning,
    csv_columns,
    load_beir,
    load_beir_report,
    load_bytes,
    load_file,
    load_files,
)
from rerank_core.errors import CorpusFormatError
from rerank_core.types import Corpus, Dataset, Document


def jsonl(*records) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in records).encode() + b"\n"


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A minimal valid PDF whose pages each draw one line of text in Helvetica (a real text layer)."""
    objects: list[bytes] = []
    n_pages = len(pages)
    font_no = 3 + 2 * n_pages
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n_pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    for i, text in enumerate(pages):
        content_no = 4 + 2 * i
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {font_no} 0 R >> >> /Contents {content_no} 0 R >>".encode()
        )
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode()
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    info_no = None
    if title is not None:
        objects.append(f"<< /Title ({title}) >>".encode())
        info_no = len(objects)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for no, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % no + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    trailer = f"<< /Size {len(objects) + 1} /Root 1 0 R{f' /Info {info_no} 0 R' if info_no else ''} >>"
    out += b"trailer\n" + trailer.encode() + b"\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


# --- JSONL / JSON -------------------------------------------------------------------------------


def test_jsonl_beir_records(tmp_path):
    p = write(
        tmp_path,
        "docs.jsonl",
        jsonl(
            {"_id": "d1", "title": "Wings", "text": "Lift over a wing."},
            {"_id": "d2", "title": "", "text": "Drag at high speed."},
        ),
    )
    rep = load_file(p)
    assert rep.documents == [
        Document(id="d1", text="Lift over a wing.", title="Wings", source="docs.jsonl"),
        Document(id="d2", text="Drag at high speed.", title="", source="docs.jsonl"),
    ]
    assert rep.warnings == [] and rep.skipped == 0 and rep.files == ["docs.jsonl"]
    assert rep.summary() == "2 documents from 1 file"


def test_jsonl_id_text_records_with_numeric_ids_and_no_title():
    rep = load_bytes(jsonl({"id": 7, "text": "seven"}, {"id": "x", "text": "ex", "extra": [1]}), "a.jsonl")
    assert [(d.id, d.text, d.title) for d in rep.documents] == [("7", "seven", ""), ("x", "ex", "")]


def test_jsonl_without_ids_gets_line_numbered_ids_with_a_warning():
    rep = load_bytes(b'{"text": "one"}\n\n{"text": "three"}\n', "notes.jsonl")
    assert [d.id for d in rep.documents] == ["notes-1", "notes-3"]
    assert len(rep.warnings) == 1 and "no id field" in rep.warnings[0].message


def test_json_array_and_single_object():
    rep = load_bytes(
        json.dumps([{"_id": "a", "text": "A"}, {"_id": "b", "text": "B"}], indent=2).encode(), "c.json"
    )
    assert [d.id for d in rep.documents] == ["a", "b"]
    one = load_bytes(b'{\n  "_id": "solo",\n  "text": "only one"\n}\n', "one.json")
    assert [d.id for d in one.documents] == ["solo"]
    lines = load_bytes(jsonl({"_id": "a", "text": "A"}, {"_id": "b", "text": "B"}), "lines.json")
    assert [d.id for d in lines.documents] == ["a", "b"]
    misnamed = load_bytes(json.dumps([{"_id": "a", "text": "A"}], indent=1).encode(), "array.jsonl")
    assert [d.id for d in misnamed.documents] == ["a"]
    assert [w.message for w in misnamed.warnings] == ["holds a JSON array, not JSON lines; read as an array"]


def test_jsonl_fields_can_be_chosen():
    data = jsonl({"pid": "p1", "passage": "text here", "heading": "H"})
    rep = load_bytes(data, "p.jsonl", csv_columns=CsvColumns(text="passage", id="pid", title="heading"))
    assert rep.documents == [Document(id="p1", text="text here", title="H", source="p.jsonl")]


def test_jsonl_line_separator_inside_a_string_is_not_a_line_break():
    rep = load_bytes(jsonl({"_id": "a", "text": "before\u2028after"}), "u.jsonl")
    assert rep.documents[0].text == "before\u2028after"


def test_jsonl_bad_records_are_skipped_and_named():
    data = jsonl(
        {"_id": "ok1", "text": "fine"},  # line 1
        '{"_id": "broken", "text": ',  # line 2: invalid JSON
        {"_id": "nofield", "body_text": "x"},  # line 3: no text field
        {"_id": "empty", "title": "", "text": "   "},  # line 4: empty
        {"_id": "ok1", "text": "again"},  # line 5: duplicate id
        {"_id": "", "text": "no id"},  # line 6: empty id
        {"_id": "titled", "title": "Only a title", "text": ""},  # line 7: kept
        "[1, 2]",  # line 8: not an object
        {"_id": "num", "text": 12},  # line 9: text not a string
        {"_id": {"a": 1}, "text": "dict id"},  # line 10: invalid id
    )
    rep = load_bytes(data, "bad.jsonl")
    assert [d.id for d in rep.documents] == ["ok1", "titled"]
    assert rep.documents[0].text == "fine"  # the first of a duplicate id is kept
    assert rep.skipped == 8
    assert rep.skip_reasons == {
        "invalid JSON": 1,
        "no text field": 1,
        "empty text": 1,
        "duplicate id": 1,
        "empty id": 1,
        "not a JSON object": 1,
        "text is not a string": 1,
        "invalid id": 1,
    }
    by_line = {w.line: w.message for w in rep.warnings}
    assert set(by_line) == {2, 3, 4, 5, 6, 8, 9, 10}
    assert all(w.file == "bad.jsonl" for w in rep.warnings)
    assert "invalid JSON" in by_line[2]
    assert "body_text" in by_line[3]  # names the fields the record does have
    assert "already used on line 1" in by_line[5]
    assert rep.summary().startswith("2 documents from 1 file; 8 records skipped (")


def test_jsonl_where_every_record_is_bad_is_an_error():
    with pytest.raises(CorpusFormatError) as e:
        load_bytes(b"not json\nalso not json\n", "x.jsonl")
    assert e.value.file == "x.jsonl" and "all 2 records were skipped" in e.value.message
    assert "line 1" in e.value.message


def test_invalid_json_array_names_the_line():
    with pytest.raises(CorpusFormatError) as e:
        load_bytes(b'[\n {"_id": "a", "text": "A"},\n {"_id": "b" "text": "B"}\n]', "arr.json")
    assert e.value.line == 3 and "arr.json, line 3" in str(e.value)


def test_empty_json_array_is_an_error():
    with pytest.raises(CorpusFormatError, match="holds no documents"):
        load_bytes(b"[]", "none.json")


def test_many_bad_lines_are_counted_exactly_but_warnings_capped():
    bad = MAX_WARNINGS_PER_REASON + 30
    data = jsonl({"_id": "ok", "text": "fine"}, *(["{broken"] * bad))
    rep = load_bytes(data, "many.jsonl")
    assert rep.skipped == bad and rep.skip_reasons == {"invalid JSON": bad}
    assert len(rep.warnings) == MAX_WARNINGS_PER_REASON + 1
    assert rep.warnings[-1].message.startswith("... and 30 more like: invalid JSON")


# --- CSV / TSV ----------------------------------------------------------------------------------


def test_csv_guessed_columns_with_quoted_multiline_field(tmp_path):
    text = 'doc_id,Title,Content,extra\n1,First,"line one\nline two",x\n2,Second,"has ""quotes"", commas",y\n'
    p = write(tmp_path, "table.csv", text)
    rep = load_file(p)
    assert rep.documents == [
        Document(id="1", text="line one\nline two", title="First", source="table.csv"),
        Document(id="2", text='has "quotes", commas', title="Second", source="table.csv"),
    ]
    assert csv_columns(p) == ["doc_id", "Title", "Content", "extra"]
    assert csv_columns(text.encode(), "upload.csv") == ["doc_id", "Title", "Content", "extra"]


def test_csv_chosen_columns_and_row_numbers_as_ids():
    data = b"question,answer\nWhat is lift?,Lift is a force.\nWhat is drag?,Drag resists motion.\n"
    rep = load_bytes(data, "faq.csv", csv_columns=CsvColumns(text="answer", title="question"))
    assert [(d.id, d.title, d.text) for d in rep.documents] == [
        ("faq-1", "What is lift?", "Lift is a force."),
        ("faq-2", "What is drag?", "Drag resists motion."),
    ]
    assert any("no id column" in w.message for w in rep.warnings)


def test_tsv_semicolon_and_bom():
    tsv = load_bytes(b"id\ttext\na\tfirst, with a comma\n", "t.tsv")
    assert [(d.id, d.text) for d in tsv.documents] == [("a", "first, with a comma")]
    semi = load_bytes(b"id;text\nb;ein Text\n", "s.csv")
    assert [(d.id, d.text) for d in semi.documents] == [("b", "ein Text")]
    bom = load_bytes(b"\xef\xbb\xbfid,text\nc,with bom\n", "bom.csv")
    assert [(d.id, d.text) for d in bom.documents] == [("c", "with bom")]
    utf16 = load_bytes("id\ttext\nd\tcaf\u00e9\n".encode("utf-16"), "excel.tsv")
    assert [(d.id, d.text) for d in utf16.documents] == [("d", "caf\u00e9")]


def test_csv_missing_chosen_column_names_the_columns_that_exist():
    with pytest.raises(CorpusFormatError) as e:
        load_bytes(b"id,body\n1,x\n", "m.csv", csv_columns=CsvColumns(text="text", id="id"))
    assert e.value.file == "m.csv" and "no column 'text'" in e.value.message
    assert "id, body" in e.value.message


def test_csv_without_a_text_like_column_asks_to_choose():
    with pytest.raises(CorpusFormatError) as e:
        load_bytes(b"a,b\n1,2\n", "q.csv")
    assert "columns: a, b" in e.value.message and "choose the text column" in e.value.hint


def test_csv_bad_rows_are_skipped_with_their_line():
    data = b'id,text\n1,good\n2,too,many\n,no id\n1,dup\n3,\n4,"multi\nline"\n5,last\n'
    rep = load_bytes(data, "rows.csv")
    assert [d.id for d in rep.documents] == ["1", "4", "5"]
    lines = {w.line: w.message for w in rep.warnings}
    assert "3 fields but the header has 2" in lines[3]
    assert "empty id" in lines[4]
    assert "duplicate id" in lines[5]
    assert "empty text" in lines[6]
    assert rep.skip_reasons == {"malformed row": 1, "empty id": 1, "duplicate id": 1, "empty text": 1}
    assert all(w.line not in (2, 7, 9) for w in rep.warnings)  # the good rows give no warning


def test_csv_in_windows_encoding_is_an_error_naming_line_and_offset():
    data = "id,text\n1,plain\n2,caf\u00e9 cr\u00e8me\n".encode("cp1252")
    with pytest.raises(CorpusFormatError) as e:
        load_bytes(data, "excel.csv")
    err = e.value
    assert err.file == "excel.csv" and err.line == 3
    offset = data.index("\u00e9".encode("cp1252"))
    assert f"byte offset {offset}" in err.message and "not valid UTF-8" in err.message
    assert "UTF-8" in err.hint and "encoding='cp1252'" in err.hint
    rep = load_bytes(data, "excel.csv", encoding="cp1252")  # the way out the hint offers
    assert rep.documents[1].text == "caf\u00e9 cr\u00e8me"


TEXT_SAMPLES = {
    "x.jsonl": '{"_id": "1", "text": "ok"}\n{"_id": "2", "text": "caf\u00e9"}\n',
    "x.json": '[{"_id": "1", "text": "ok"},\n {"_id": "2", "text": "caf\u00e9"}]',
    "x.csv": "id,text\n1,ok\n2,caf\u00e9\n",
    "x.tsv": "id\ttext\n1\tok\n2\tcaf\u00e9\n",
    "x.txt": "ok\ncaf\u00e9\n",
    "x.md": "# ok\ncaf\u00e9\n",
}


@pytest.mark.parametrize("name", sorted(TEXT_SAMPLES))
def test_every_text_loader_names_file_and_line_of_a_wrong_encoding(name):
    text = TEXT_SAMPLES[name]
    data = text.encode("latin-1")
    line = text[: text.index("\u00e9")].count("\n") + 1
    with pytest.raises(CorpusFormatError) as e:
        load_bytes(data, name)
    assert (e.value.file, e.value.line) == (name, line) and "not valid UTF-8" in e.value.message
    assert "caf\u00e9" in "".join(d.text for d in load_bytes(data, name, encoding="latin-1").documents)
    assert "caf\u00e9" in "".join(d.text for d in load_bytes(data.decode("latin-1").encode(), name).documents)


@pytest.mark.parametrize("name", sorted(TEXT_SAMPLES) + ["x.pdf", "x.zip"])
def test_every_loader_applies_the_size_limit(name):
    with pytest.raises(CorpusFormatError, match=f"{re.escape(name)}: is .* MB, more than the 0 MB limit"):
        load_bytes(b"x" * 200, name, max_bytes=100)


# --- text, Markdown, PDF ------------------------------------------------------------------------


def test_text_file_is_one_document_named_after_the_file(tmp_path):
    p = write(tmp_path, "wing notes.txt", "Line one.\n\nLine two.\n")
    rep = load_file(p)
    assert rep.documents == [
        Document(id="wing notes", text="Line one.\n\nLine two.", title="wing notes", source="wing notes.txt")
    ]


def test_markdown_title_from_first_heading_or_front_matter():
    md = b"# Boundary layers\n\nThe **boundary layer** is thin.\n\n## Details\nMore.\n"
    doc = load_bytes(md, "bl.md").documents[0]
    assert (doc.id, doc.title) == ("bl", "Boundary layers")
    assert doc.text.startswith("The **boundary layer** is thin.") and "## Details" in doc.text
    fm = load_bytes(b"---\ntitle: 'Shock waves'\ntags: [a]\n---\nBody text.\n", "s.markdown").documents[0]
    assert (fm.title, fm.text) == ("Shock waves", "Body text.")
    setext = load_bytes(b"Heat transfer\n=============\n\nBody.\n", "h.md").documents[0]
    assert (setext.title, setext.text) == ("Heat transfer", "Body.")
    plain = load_bytes(b"No heading here.\n", "plain.md").documents[0]
    assert (plain.title, plain.text) == ("plain", "No heading here.")


def test_pdf_text_layer(tmp_path):
    p = write(tmp_path, "report.pdf", make_pdf(["Supersonic flow over a cone.", "Second page (results)."]))
    rep = load_file(p)
    [doc] = rep.documents
    assert (doc.id, doc.title, doc.source) == ("report", "report", "report.pdf")
    assert "Supersonic flow over a cone." in doc.text and "Second page (results)." in doc.text
    assert doc.text.index("Supersonic") < doc.text.index("Second page")
    titled = load_bytes(make_pdf(["Body."], title="Cone Study"), "c.pdf").documents[0]
    assert titled.title == "Cone Study"


def test_pdf_without_text_layer_suggests_ocr():
    from pypdf import PdfWriter

    w = PdfWriter()
    w.add_blank_page(width=200, height=200)
    buf = io.BytesIO()
    w.write(buf)
    with pytest.raises(CorpusFormatError) as e:
        load_bytes(buf.getvalue(), "scan.pdf")
    assert e.value.file == "scan.pdf" and "no text layer" in e.value.message and "OCR" in e.value.hint


def test_broken_and_encrypted_and_fake_pdfs():
    with pytest.raises(CorpusFormatError, match="is not a PDF"):
        load_bytes(b"just some text", "fake.pdf")
    with pytest.raises(CorpusFormatError, match="fake2.pdf: is not a readable PDF"):
        load_bytes(b"%PDF-1.4\n garbage without objects", "fake2.pdf")
    from pypdf import PdfWriter

    w = PdfWriter()
    w.add_blank_page(width=200, height=200)
    w.encrypt("secret")
    buf = io.BytesIO()
    w.write(buf)
    with pytest.raises(CorpusFormatError, match="password-protected"):
        load_bytes(buf.getvalue(), "locked.pdf")


# --- whole-file problems ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["data.txt", "data.csv", "data.jsonl", "data.md"])
def test_binary_file_renamed_as_text_is_refused(name):
    with pytest.raises(CorpusFormatError) as e:
        load_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)) * 4, name)
    assert e.value.file == name and "looks like a binary file" in e.value.message


def test_binary_file_of_known_kind_is_named():
    with pytest.raises(CorpusFormatError) as e:
        load_bytes(make_pdf(["x"]), "paper.txt")
    assert "a PDF document" in e.value.message and ".pdf" in e.value.hint
    with pytest.raises(CorpusFormatError, match="PNG image"):
        load_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "img.csv")
    # undecodable bytes without NULs but mostly control characters: binary, not a wrong encoding
    with pytest.raises(CorpusFormatError, match="looks like a binary file"):
        load_bytes(bytes([0x81, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08] * 100), "blob.txt")


@pytest.mark.parametrize("data", [b"", b"   \n\n\t "])
@pytest.mark.parametrize("name", ["e.txt", "e.jsonl", "e.csv", "e.pdf", "e.md"])
def test_empty_file_is_an_error(name, data):
    with pytest.raises(CorpusFormatError) as e:
        load_bytes(data, name)
    assert e.value.file == name
    assert "is empty" in e.value.message or "is not a PDF" in e.value.message


def test_empty_file_on_disk(tmp_path):
    with pytest.raises(CorpusFormatError, match="empty.jsonl: is empty"):
        load_file(write(tmp_path, "empty.jsonl", b""))


def test_unknown_extension_lists_supported_ones(tmp_path):
    with pytest.raises(CorpusFormatError) as e:
        load_file(write(tmp_path, "notes.docx", b"PK\x03\x04"))
    assert "unsupported extension .docx" in e.value.message
    assert all(ext in e.value.hint for ext in SUPPORTED_EXTENSIONS)
    with pytest.raises(CorpusFormatError, match="unsupported extension"):
        load_bytes(b"x", "no_extension")


def test_file_larger_than_limit_is_refused_before_reading(tmp_path):
    big = tmp_path / "huge.jsonl"
    with big.open("wb") as fh:  # a sparse 200 MB file: instant, no disk used
        fh.truncate(200 * 1024 * 1024)
    t0 = time.perf_counter()
    with pytest.raises(CorpusFormatError) as e:
        load_file(big)
    assert time.perf_counter() - t0 < 1.0
    # the size check came first: reading it would have said "is empty" or "binary" instead
    assert "is 200.0 MB, more than the 100 MB limit" in e.value.message and e.value.file == "huge.jsonl"
    assert DEFAULT_MAX_BYTES == 100 * 1024 * 1024
    small = write(tmp_path, "small.jsonl", jsonl({"_id": "a", "text": "x" * 500}))
    with pytest.raises(CorpusFormatError, match="limit"):
        load_file(small, max_bytes=100)
    with pytest.raises(CorpusFormatError, match="limit"):
        load_bytes(small.read_bytes(), "small.jsonl", max_bytes=100)
    assert len(load_file(small, max_bytes=10_000).documents) == 1


def test_missing_path_and_folder(tmp_path):
    with pytest.raises(CorpusFormatError, match="does not exist"):
        load_file(tmp_path / "nope.jsonl")
    with pytest.raises(CorpusFormatError, match="is a folder"):
        load_file(tmp_path)


def test_name_overrides_temp_file_name(tmp_path):
    p = write(tmp_path, "tmpab12cd", "# Title\nbody")
    rep = load_file(p, name="My Notes.md")
    assert rep.documents == [Document(id="My Notes", text="body", title="Title", source="My Notes.md")]
    assert rep.files == ["My Notes.md"]


# --- several files ------------------------------------------------------------------------------


class FakeUpload:
    """The shape of an uploaded file object: a name and getvalue()."""

    def __init__(self, name: str, data: bytes) -> None:
        self.name, self._data = name, data

    def getvalue(self) -> bytes:
        return self._data


def test_load_files_merges_and_reports_duplicates_across_files(tmp_path):
    a = write(tmp_path, "a.jsonl", jsonl({"_id": "1", "text": "one"}, {"_id": "2", "text": "two"}))
    b = ("b.jsonl", jsonl({"_id": "2", "text": "two again"}, {"_id": "3", "text": "three"}))
    c = FakeUpload("c.csv", b"id,text\n4,four\n")
    notes1 = write(tmp_path / "x", "readme.md", "# X\nfirst readme")
    notes2 = FakeUpload("readme.md", b"# Y\nsecond readme")
    rep = load_files([a, b, c, notes1, notes2])
    assert [d.id for d in rep.documents] == ["1", "2", "3", "4", "readme", "readme-2"]
    assert [d.text for d in rep.documents if d.id == "2"] == ["two"]  # the later duplicate is skipped
    assert rep.files == ["a.jsonl", "b.jsonl", "c.csv", "readme.md", "readme.md"]
    assert rep.skipped == 1 and rep.skip_reasons == {"duplicate id": 1}
    dup = [w for w in rep.warnings if "duplicate id" in w.message]
    assert dup[0].file == "b.jsonl" and "already loaded from a.jsonl" in dup[0].message
    renamed = [w for w in rep.warnings if "renamed" in w.message]
    assert len(renamed) == 1 and "'readme-2'" in renamed[0].message
    assert rep.summary() == "6 documents from 5 files; 1 record skipped (1 duplicate id); 1 other warning"
    assert isinstance(rep.to_corpus("mine"), Corpus) and len(rep.to_corpus()) == 6


def test_load_files_error_handling(tmp_path):
    good = ("g.jsonl", jsonl({"_id": "1", "text": "one"}))
    bad = ("bad.txt", b"\x00\x01binary")
    with pytest.raises(CorpusFormatError, match="bad.txt"):
        load_files([good, bad])
    rep = load_files([good, bad], on_error="skip")
    assert [d.id for d in rep.documents] == ["1"] and rep.files == ["g.jsonl"]
    assert rep.warnings[0].file == "bad.txt" and "file not loaded" in rep.warnings[0].message
    with pytest.raises(TypeError):
        load_files([42])


def test_report_summary_wording():
    rep = LoadReport(documents=[Document("a", "x")], files=["f.jsonl"])
    assert rep.summary() == "1 document from 1 file"
    rep.skip("f.jsonl", 3, "empty text")
    rep.skip("f.jsonl", 4, "duplicate id")
    rep.skip("f.jsonl", 5, "empty text")
    assert rep.summary() == "1 document from 1 file; 3 records skipped (2 empty text, 1 duplicate id)"
    assert str(rep.warnings[0]) == "f.jsonl, line 3: skipped (empty text)"
    assert LoadWarning("f", None, "m") == LoadWarning("f", None, "m")


# --- zip archives and BEIR ----------------------------------------------------------------------


def beir_files(extra_qrels: str = "") -> dict[str, bytes]:
    corpus = jsonl(
        {"_id": "d1", "title": "Lift", "text": "Lift on wings."},
        {"_id": "d2", "title": "Drag", "text": "Drag on bodies."},
        {"_id": "d3", "title": "Only title", "text": ""},
        {"_id": "d4", "title": "", "text": ""},  # judged below: kept, with a warning
    )
    queries = jsonl(
        {"_id": "q1", "text": "what is lift"}, {"_id": "q2", "text": "drag"}, {"_id": "q3", "text": "  "}
    )
    qrels = "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td4\t1\nq2\td2\t1\nq2\td9\t1\nq7\td1\t1\nq2\td2\t3\n"
    return {
        "corpus.jsonl": corpus,
        "queries.jsonl": queries,
        "qrels/test.tsv": (qrels + extra_qrels).encode(),
    }


def make_zip(files: dict[str, bytes], prefix: str = "") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(prefix + name, data)
    return buf.getvalue()


def check_small_beir(ds: Dataset, warnings: list[LoadWarning], name: str) -> None:
    assert ds.name == name
    assert ds.corpus.ids == ["d1", "d2", "d3", "d4"]
    assert ds.corpus.get("d3").title == "Only title"
    assert ds.queries == {"q1": "what is lift", "q2": "drag"}
    assert ds.qrels == {"q1": {"d1": 2, "d4": 1}, "q2": {"d2": 1}}
    msgs = [w.message for w in warnings]
    assert any("kept record 'd4'" in m for m in msgs)
    assert any("empty text" in m and "'q3'" in m for m in msgs)
    assert any("unknown document" in m and "'d9'" in m for m in msgs)
    assert any("unknown query" in m and "'q7'" in m for m in msgs)
    assert any("duplicate qrel" in m and "line 4" in m for m in msgs)
    unknown = [w for w in warnings if "unknown document" in w.message]
    assert unknown[0].line == 5 and unknown[0].file.endswith("qrels/test.tsv")


def test_beir_folder(tmp_path):
    root = tmp_path / "tiny"
    for rel, data in beir_files().items():
        write(root, rel, data)
    ds, warnings = load_beir_report(root)
    check_small_beir(ds, warnings, "tiny")
    # pointing at the parent of a single dataset folder works too
    assert load_beir(tmp_path).corpus.ids == ["d1", "d2", "d3", "d4"]


def test_beir_zip_with_top_folder_and_load_file_takes_documents(tmp_path):
    z = write(tmp_path, "tiny-beir.zip", make_zip(beir_files(), prefix="tiny/"))
    ds, warnings = load_beir_report(z)
    check_small_beir(ds, warnings, "tiny")
    rep = load_file(z)
    assert [d.id for d in rep.documents] == ["d1", "d2", "d3"]  # a plain corpus load skips the empty d4
    assert rep.documents[0].source == "tiny-beir.zip:tiny/corpus.jsonl"
    flat = write(tmp_path, "flat.zip", make_zip(beir_files()))
    assert load_beir(flat).name == "flat"


def test_beir_other_split_and_missing_split(tmp_path):
    files = beir_files()
    files["qrels/dev.tsv"] = b"query-id\tcorpus-id\tscore\nq2\td1\t1\n"
    root = tmp_path / "ds"
    for rel, data in files.items():
        write(root, rel, data)
    assert load_beir(root, split="dev").qrels == {"q2": {"d1": 1}}
    with pytest.raises(CorpusFormatError) as e:
        load_beir(root, split="train")
    assert "no qrels for split 'train'" in e.value.message and "dev, test" in e.value.hint


def test_beir_missing_parts(tmp_path):
    files = beir_files()
    del files["queries.jsonl"]
    with pytest.raises(CorpusFormatError, match="missing queries.jsonl"):
        load_beir(write(tmp_path, "noq.zip", make_zip(files)))
    (tmp_path / "plain").mkdir()
    with pytest.raises(CorpusFormatError, match="not a BEIR dataset folder"):
        load_beir(tmp_path / "plain")
    with pytest.raises(CorpusFormatError, match="does not exist"):
        load_beir(tmp_path / "absent")


def test_zip_without_corpus_bad_zip_and_bomb(tmp_path):
    z = write(tmp_path, "docs.zip", make_zip({"a.txt": b"hello", "b.md": b"# B"}))
    with pytest.raises(CorpusFormatError) as e:
        load_file(z)
    assert "no corpus.jsonl" in e.value.message and "a.txt" in e.value.message
    with pytest.raises(CorpusFormatError, match="not a BEIR dataset"):
        load_beir(z)
    with pytest.raises(CorpusFormatError, match="not a valid zip"):
        load_bytes(b"PK\x03\x04 truncated", "broken.zip")
    # a member that inflates far beyond the limit is refused without inflating it all
    bomb = make_zip({"corpus.jsonl": b"\x00" * 3_000_000})
    assert len(bomb) < 20_000
    with pytest.raises(
        CorpusFormatError, match=r"bomb.zip:corpus.jsonl: is 2.9 MB, more than the 1 MB limit"
    ):
        load_bytes(bomb, "bomb.zip", max_bytes=1024 * 1024)
    many = make_zip({f"part{i}.bin": b"\x00" * 1_000_000 for i in range(5)} | {"corpus.jsonl": b"{}"})
    with pytest.raises(CorpusFormatError, match="would unpack to 5 MB, more than allowed"):
        load_bytes(many, "many.zip", max_bytes=1024 * 1024)


def test_zip_member_with_forged_size_is_a_format_error():
    from rerank_core.corpus import _ZipReader

    data = make_zip({"corpus.jsonl": jsonl({"_id": "a", "text": "x" * 5000})})
    zr = _ZipReader(data, "z.zip", max_bytes=100_000)
    info = zr.get("corpus.jsonl")
    info.file_size = 10  # a forged header claiming a tiny member: reading stops there and the CRC fails
    with pytest.raises(CorpusFormatError, match="z.zip:corpus.jsonl: cannot be unpacked"):
        zr.read(info)


def test_cranfield(cranfield_dir):
    docs = [
        json.loads(line) for line in (cranfield_dir / "corpus.jsonl").read_text().splitlines() if line.strip()
    ]
    queries = [line for line in (cranfield_dir / "queries.jsonl").read_text().splitlines() if line.strip()]
    qrel_rows = (cranfield_dir / "qrels" / "test.tsv").read_text().splitlines()[1:]
    ds, warnings = load_beir_report(cranfield_dir)
    assert (len(ds.corpus), len(ds.queries)) == (len(docs), len(queries)) == (1400, 225)
    assert sum(len(v) for v in ds.qrels.values()) == len(qrel_rows) == 1612
    empty = [d["_id"] for d in docs if not d["text"].strip()]
    assert empty == ["471", "995"]
    assert all(e in ds.corpus for e in empty)  # kept: 995 is judged relevant
    assert ds.qrels["125"]["995"] == 2
    assert [w.line for w in warnings] == [471, 995] and all("kept record" in w.message for w in warnings)
    assert ds.corpus.get("1").title.startswith("experimental investigation of the aerodynamics")
    assert ds.judged_query_ids == [str(i) for i in range(1, 226)]
