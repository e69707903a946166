"""synth.inputs.documents and synth.inputs.html: real files of every format, and every way a source can be wrong."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from synth.errors import UserError
from synth.ids import sha256_text
from synth.inputs.documents import iter_documents, read_documents, resolve_paths
from synth.inputs.html import html_to_text
from synth.spec.model import InputRef

HTML = """<!doctype html><html><head><title>Tide tables</title>
<style>body { color: red; }</style><script>var secret = "do not keep";</script></head>
<body><nav><a href="/">Home</a> | <a href="/about">About</a></nav>
<h1>Tides</h1><p>The moon   pulls
the sea.</p><p>Spring tides are the <b>largest</b> &amp; neap tides the smallest.</p>
<ul><li>High water</li><li>Low water</li></ul><noscript>Enable JavaScript</noscript>
<pre>  indented
    code</pre></body></html>"""


def minimal_pdf(lines: list[str]) -> bytes:
    """A one-page PDF whose content stream draws `lines` in Helvetica: written by hand, byte offsets and all."""
    drawn = " ".join(f"({line}) Tj 0 -16 Td" for line in lines)
    stream = f"BT /F1 12 Tf 72 720 Td 16 TL {drawn} ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def encrypted_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt("secret")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def texts(path: Path | str, base_dir: Path, **options) -> list[str]:
    return [doc.text for doc in iter_documents(str(path), base_dir, **options)]


# --- every format ------------------------------------------------------------------------------------------------


def test_plain_text_is_read_as_written_with_unix_newlines(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"\xef\xbb\xbfFirst line.\r\nSecond line.\r\n")
    (doc,) = iter_documents("a.txt", tmp_path)
    assert (doc.doc_id, doc.path, doc.format, doc.text) == ("a.txt", "a.txt", "txt", "First line.\nSecond line.\n")
    assert doc.sha256 == sha256_text("First line.\nSecond line.\n")


def test_markdown_keeps_its_markup(tmp_path):
    (tmp_path / "notes.md").write_text("# Title\n\nSome *emphasis*.\n")
    (doc,) = iter_documents("notes.md", tmp_path)
    assert (doc.format, doc.text) == ("md", "# Title\n\nSome *emphasis*.\n")


def test_html_becomes_readable_text_without_script_style_or_nav(tmp_path):
    (tmp_path / "page.html").write_text(HTML)
    (doc,) = iter_documents("page.html", tmp_path)
    assert doc.format == "html"
    assert doc.text == (
        "Tide tables\n\nTides\n\nThe moon pulls the sea.\n\n"
        "Spring tides are the largest & neap tides the smallest.\n\n"
        "High water\nLow water\n\n  indented\n    code"
    )


@pytest.mark.parametrize("tag", ["script", "style", "nav", "noscript", "template"])
def test_html_drops_what_a_reader_does_not_see(tag):
    assert html_to_text(f"<p>kept</p><{tag}>dropped</{tag}><p>also kept</p>") == "kept\n\nalso kept"


def test_a_handwritten_pdf_is_valid_for_pypdf():
    reader = PdfReader(io.BytesIO(minimal_pdf(["Hello PDF"])))
    assert "Hello PDF" in reader.pages[0].extract_text()


def test_pdf_text_is_extracted(tmp_path):
    (tmp_path / "report.pdf").write_bytes(minimal_pdf(["Quarterly results", "Revenue grew by ten percent"]))
    (doc,) = iter_documents("report.pdf", tmp_path)
    assert doc.format == "pdf"
    assert doc.text.split("\n") == ["Quarterly results", "Revenue grew by ten percent"]


def test_jsonl_gives_one_document_per_line_with_its_own_id(tmp_path):
    rows = [{"id": "first", "text": "Alpha text."}, {"text": "Beta text."}, {"id": 7, "body": "x", "text": "Gamma."}]
    (tmp_path / "docs.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:2]) + "\n\n" + json.dumps(rows[2]))
    docs = list(iter_documents("docs.jsonl", tmp_path))
    assert [(d.doc_id, d.path, d.text) for d in docs] == [
        ("first", "docs.jsonl", "Alpha text."),
        ("docs.jsonl:2", "docs.jsonl", "Beta text."),
        ("7", "docs.jsonl", "Gamma."),
    ]


def test_jsonl_text_field_is_chosen_with_field(tmp_path):
    (tmp_path / "docs.jsonl").write_text(json.dumps({"body": "In the body."}) + "\n")
    assert texts("docs.jsonl", tmp_path, field="body") == ["In the body."]


def test_format_forces_a_reader_whatever_the_extension(tmp_path):
    (tmp_path / "page.txt").write_text("<p>Hello <script>x</script>there</p>")
    assert texts("page.txt", tmp_path, fmt="html") == ["Hello there"]


# --- folders, globs, lists, limits -------------------------------------------------------------------------------


def test_a_folder_is_read_recursively_in_path_order_skipping_hidden_and_unknown_files(tmp_path):
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "b.md").write_text("B")
    (tmp_path / "docs" / "a.txt").write_text("A")
    (tmp_path / "docs" / "sub" / "c.txt").write_text("C")
    (tmp_path / "docs" / ".hidden.txt").write_text("H")
    (tmp_path / "docs" / "image.png").write_bytes(b"\x89PNG")
    docs = list(iter_documents("docs", tmp_path))
    assert [(d.path, d.text) for d in docs] == [("docs/a.txt", "A"), ("docs/b.md", "B"), ("docs/sub/c.txt", "C")]


def test_a_glob_and_a_list_of_files_are_read_in_order_without_repeats(tmp_path):
    for name in ("x1.txt", "x2.txt", "y.md"):
        (tmp_path / name).write_text(name)
    assert texts("x*.txt", tmp_path) == ["x1.txt", "x2.txt"]
    assert [d.text for d in iter_documents(["y.md", "x*.txt", "x1.txt"], tmp_path)] == ["y.md", "x1.txt", "x2.txt"]


def test_limit_stops_after_that_many_documents(tmp_path):
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"text": f"doc {i}"}) + "\n" for i in range(10)))
    assert texts("docs.jsonl", tmp_path, limit=3) == ["doc 0", "doc 1", "doc 2"]


def test_an_absolute_path_outside_the_spec_folder_keeps_its_full_path(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "a.txt").write_text("A")
    (tmp_path / "spec").mkdir()
    (doc,) = iter_documents(str(tmp_path / "elsewhere" / "a.txt"), tmp_path / "spec")
    assert doc.path == str(tmp_path / "elsewhere" / "a.txt")


def test_documents_stream_lazily(tmp_path):
    (tmp_path / "a.txt").write_text("A")
    (tmp_path / "b.pdf").write_bytes(b"not a pdf")
    documents = iter_documents(["a.txt", "b.pdf"], tmp_path)
    assert next(documents).text == "A"  # the broken PDF has not been opened yet
    with pytest.raises(UserError, match=r"b\.pdf: not a readable PDF"):
        next(documents)


def test_read_documents_takes_an_inputs_entry(tmp_path):
    (tmp_path / "a.txt").write_text("A")
    (tmp_path / "b.txt").write_text("B")
    ref = InputRef.model_validate({"path": "*.txt", "limit": 1})
    assert [d.text for d in read_documents(ref, tmp_path)] == ["A"]


# --- empty documents ---------------------------------------------------------------------------------------------


def test_an_empty_document_is_skipped_with_a_warning(tmp_path, caplog):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "empty.txt").write_text("  \n")
    (tmp_path / "docs" / "full.txt").write_text("Text.")
    with caplog.at_level(logging.WARNING, logger="synth.inputs.documents"):
        assert texts("docs", tmp_path) == ["Text."]
    assert "skipping empty document: doc=docs/empty.txt" in caplog.text


def test_a_source_where_no_document_has_text_is_an_error(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(UserError, match="no document has any text"):
        texts("empty.txt", tmp_path)


# --- errors name the file ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "pattern", "message"),
    [
        (None, None, "missing.txt", r"'missing.txt' does not exist"),
        (None, None, "*.md", r"'\*.md' matched no file"),
        ("notes.docx", b"PK", "notes.docx", r"notes.docx: unsupported file type '.docx'"),
        ("bad.txt", b"caf\xe9\n", "bad.txt", r"bad.txt: not UTF-8 text \(byte 0xe9 at offset 3\)"),
        ("broken.pdf", b"%PDF-1.4 garbage", "broken.pdf", r"broken.pdf: not a readable PDF"),
        ("locked.pdf", encrypted_pdf(), "locked.pdf", r"locked.pdf: the PDF is encrypted"),
        ("d.jsonl", b'{"text": "ok"}\n{"text": \n', "d.jsonl", r"d.jsonl:2: not valid JSON"),
        ("d.jsonl", b'["text"]\n', "d.jsonl", r"d.jsonl:1: each line must be a JSON object, not list"),
        ("d.jsonl", b'{"body": "x"}\n', "d.jsonl", r"d.jsonl:1: no 'text' field \(keys: body\)"),
        ("d.jsonl", b'{"text": 3}\n', "d.jsonl", r"d.jsonl:1: field 'text' must be a string, not int"),
    ],
    ids=["missing", "no_match", "unsupported", "not_utf8", "broken_pdf", "encrypted_pdf", "jsonl_syntax",
         "jsonl_not_object", "jsonl_no_field", "jsonl_not_string"],
)  # fmt: skip
def test_a_bad_source_is_a_user_error_naming_the_file(tmp_path, name, content, pattern, message):
    if name:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(UserError, match=message):
        texts(pattern, tmp_path)


def test_a_folder_without_documents_is_an_error(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "image.png").write_bytes(b"\x89PNG")
    with pytest.raises(UserError, match=r"folder 'docs' holds no document"):
        resolve_paths("docs", tmp_path)


def test_an_unknown_format_is_an_error(tmp_path):
    (tmp_path / "a.txt").write_text("A")
    with pytest.raises(UserError, match="format 'csv' is not a document format"):
        texts("a.txt", tmp_path, fmt="csv")
