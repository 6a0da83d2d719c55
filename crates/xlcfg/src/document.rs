//! The lossless document model: every byte of the input is kept (comments,
//! blank lines, order), so writing an unedited document gives back the same
//! bytes, and an edit touches only the text of the key edited.

use std::ops::Range;

use serde::Serialize;

use crate::diag::{Diagnostic, Severity};
use crate::error::{Error, Result};
use crate::parser;
use crate::settings::Settings;

/// An assignment operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    /// `=`
    #[serde(rename = "=")]
    Assign,
    /// `+=` (string or list concatenation onto the previous setting).
    #[serde(rename = "+=")]
    Append,
}

impl Op {
    /// The operator's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Assign => "=",
            Op::Append => "+=",
        }
    }
}

/// A value: a string (quoted strings and bare numbers alike) or a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// A string atom.
    Str(String),
    /// A list of values (lists may nest).
    List(Vec<Value>),
}

impl Value {
    /// True for lists.
    pub fn is_list(&self) -> bool {
        matches!(self, Value::List(_))
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::List(_) => None,
        }
    }

    /// `self ⧺ other` for two strings or two lists; `None` for a mix.
    pub fn concat(&self, other: &Value) -> Option<Value> {
        match (self, other) {
            (Value::Str(a), Value::Str(b)) => Some(Value::Str(format!("{a}{b}"))),
            (Value::List(a), Value::List(b)) => {
                Some(Value::List(a.iter().chain(b).cloned().collect()))
            }
            _ => None,
        }
    }

    /// A list of strings.
    pub fn strings<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Value {
        Value::List(items.into_iter().map(|s| Value::Str(s.into())).collect())
    }

    /// Write in the form the reference reads back identically
    /// (SPEC.md §5a): integers bare, other strings in single quotes.
    pub fn to_source(&self) -> String {
        let mut out = String::new();
        write_value(&mut out, self, false);
        out
    }

    /// Like [`Value::to_source`] but a list is written one item per line.
    pub fn to_source_multiline(&self) -> String {
        let mut out = String::new();
        write_value(&mut out, self, true);
        out
    }
}

/// True when `s` can be written as a bare NUMBER token and means the same
/// (plain decimal without a leading zero, or lowercase `0x` hex).
fn bare_number(s: &str) -> bool {
    let b = s.as_bytes();
    let dec = !b.is_empty() && b.iter().all(u8::is_ascii_digit) && (b[0] != b'0' || b.len() == 1);
    let hex = b.len() > 2
        && b.starts_with(b"0x")
        && b[2..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
    dec || hex
}

/// Quote a string for xl.cfg: single quotes; `\\`, `\'` and control
/// characters escaped (a raw newline is not allowed in a string).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0b' => out.push_str("\\v"),
            '\x0c' => out.push_str("\\f"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn write_value(out: &mut String, v: &Value, multiline: bool) {
    match v {
        Value::Str(s) if bare_number(s) => out.push_str(s),
        Value::Str(s) => out.push_str(&quote(s)),
        Value::List(items) if items.is_empty() => out.push_str("[]"),
        Value::List(items) if multiline => {
            out.push_str("[\n");
            for it in items {
                out.push_str("    ");
                write_value(out, it, false);
                out.push_str(",\n");
            }
            out.push(']');
        }
        Value::List(items) => {
            out.push_str("[ ");
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, it, false);
            }
            out.push_str(" ]");
        }
    }
}

/// Where an entry came from in the parsed source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Span of the whole assignment (key to end of value).
    pub span: Range<usize>,
    /// Span of the value.
    pub value_span: Range<usize>,
    /// Line where the value starts.
    pub line: usize,
    /// Top-level list items: token span and whether the token is exactly the
    /// quoted value (so offsets inside it map straight to the file).
    pub items: Vec<(Range<usize>, bool)>,
}

/// One assignment, with its exact text.
#[derive(Debug, Clone)]
pub struct Entry {
    key: String,
    op: Op,
    value: Value,
    /// Exact bytes (an entry may hold non-UTF-8 bytes inside quotes).
    text: Vec<u8>,
    origin: Option<Origin>,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key && self.op == o.op && self.value == o.value && self.text == o.text
    }
}

impl Eq for Entry {}

impl Entry {
    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }
    /// The operator.
    pub fn op(&self) -> Op {
        self.op
    }
    /// The value as written in this entry (before any `+=` concatenation).
    pub fn value(&self) -> &Value {
        &self.value
    }
    /// The exact source text of this assignment.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.text)
    }

    /// The exact source bytes of this assignment.
    pub fn text_bytes(&self) -> &[u8] {
        &self.text
    }
    /// Where it was parsed from; `None` once edited.
    pub fn origin(&self) -> Option<&Origin> {
        self.origin.as_ref()
    }

    pub(crate) fn with_text(&self, text: Vec<u8>) -> Self {
        Self {
            key: self.key.clone(),
            op: self.op,
            value: self.value.clone(),
            text,
            origin: None,
        }
    }

    fn canonical(key: &str, op: Op, value: &Value, multiline: bool) -> Self {
        let v = if multiline {
            value.to_source_multiline()
        } else {
            value.to_source()
        };
        Self {
            key: key.to_owned(),
            op,
            value: value.clone(),
            text: format!("{key} {} {v}", op.as_str()).into_bytes(),
            origin: None,
        }
    }
}

/// A piece of the document: text between assignments, or an assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Whitespace, comments, newlines, `;` (kept byte for byte).
    Trivia(Vec<u8>),
    /// An assignment.
    Entry(Entry),
}

/// A parsed xl.cfg file that can be edited and written back losslessly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pieces: Vec<Piece>,
}

/// The result of a successful parse: the document and any warnings.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The document.
    pub document: Document,
    /// Warnings (nothing here stops `xl create`).
    pub warnings: Vec<Diagnostic>,
}

impl Document {
    /// Parse `source` (named `file` in diagnostics). Fails exactly when
    /// libxlutil refuses the file; the error lists every diagnostic.
    pub fn parse(source: &[u8], file: &str) -> Result<Parsed> {
        let parsed = parser::parse(source, file);
        if parsed.failed {
            return Err(Error::Parse {
                file: file.to_owned(),
                diagnostics: parsed.diags,
            });
        }
        let mut pieces = Vec::with_capacity(parsed.entries.len() * 2 + 1);
        let mut pos = 0;
        for e in parsed.entries {
            if e.span.start > pos {
                pieces.push(Piece::Trivia(source[pos..e.span.start].to_vec()));
            }
            let text = source[e.span.clone()].to_vec();
            pos = e.span.end;
            pieces.push(Piece::Entry(Entry {
                key: e.key,
                op: e.op,
                value: e.value,
                text,
                origin: Some(Origin {
                    span: e.span,
                    value_span: e.value_span,
                    line: e.line,
                    items: e.items,
                }),
            }));
        }
        if pos < source.len() {
            pieces.push(Piece::Trivia(source[pos..].to_vec()));
        }
        let warnings = parsed
            .diags
            .into_iter()
            .filter(|d| d.severity == Severity::Warning)
            .collect();
        Ok(Parsed {
            document: Document { pieces },
            warnings,
        })
    }

    /// Parse a string.
    pub fn parse_str(source: &str, file: &str) -> Result<Parsed> {
        Self::parse(source.as_bytes(), file)
    }

    /// Read and parse a file.
    pub fn read(path: &std::path::Path) -> Result<(Vec<u8>, Parsed)> {
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        let parsed = Self::parse(&bytes, &path.display().to_string())?;
        Ok((bytes, parsed))
    }

    /// An empty document.
    pub fn new() -> Self {
        Self { pieces: Vec::new() }
    }

    /// The pieces, in order.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// Every assignment, in order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Entry(e) => Some(e),
            Piece::Trivia(_) => None,
        })
    }

    /// The effective settings (what xl looks up).
    pub fn settings(&self) -> Result<Settings> {
        Settings::from_entries(self.entries())
    }

    /// The document's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.pieces {
            match p {
                Piece::Trivia(t) => out.extend_from_slice(t),
                Piece::Entry(e) => out.extend_from_slice(&e.text),
            }
        }
        out
    }

    fn last_index(&self, key: &str) -> Option<usize> {
        self.pieces
            .iter()
            .rposition(|p| matches!(p, Piece::Entry(e) if e.key == key))
    }

    /// Set `key` to `value`. The last assignment of the key is rewritten as
    /// `key = value` (in the same single- or multi-line style); if the key is
    /// absent, `key = value` is appended on a new line at the end.
    pub fn set(&mut self, key: &str, value: Value) -> Result<()> {
        check_key(key)?;
        if let Some(i) = self.last_index(key) {
            if let Piece::Entry(e) = &self.pieces[i] {
                let multiline = e.value.is_list() && e.text.contains(&b'\n');
                self.pieces[i] = Piece::Entry(Entry::canonical(key, Op::Assign, &value, multiline));
            }
            return Ok(());
        }
        let mut bytes = self.to_bytes();
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            bytes.push(b'\n');
            if Document::parse(&bytes, "<edit>").is_err() {
                // The only text xl accepts at the very end of a file but not
                // before a newline is a single stray character, which it
                // ignores (SPEC.md §1.7): drop it rather than break the file.
                if let Some(Piece::Trivia(t)) = self.pieces.last_mut() {
                    t.pop();
                }
            }
            self.pieces.push(Piece::Trivia(b"\n".to_vec()));
        }
        let multiline =
            matches!(&value, Value::List(v) if v.len() > 1 && value.to_source().len() > 60);
        self.pieces.push(Piece::Entry(Entry::canonical(
            key,
            Op::Assign,
            &value,
            multiline,
        )));
        self.pieces.push(Piece::Trivia(b"\n".to_vec()));
        self.merge_trivia();
        Ok(())
    }

    /// Append `item` to the list `key` (creating `key = [ item ]` if absent).
    pub fn append(&mut self, key: &str, item: Value) -> Result<()> {
        let settings = self.settings()?;
        let mut items = match settings.get(key).map(|s| &s.value) {
            Some(Value::List(v)) => v.clone(),
            Some(Value::Str(_)) => {
                return Err(Error::Domain {
                    message: format!("cannot append to `{key}`: it is a string, not a list"),
                    key: Some(key.to_owned()),
                });
            }
            None => Vec::new(),
        };
        items.push(item);
        self.set(key, Value::List(items))
    }

    /// Remove every assignment of `key`, with the line it stood on when it
    /// was alone there. Returns whether anything was removed.
    pub fn remove(&mut self, key: &str) -> bool {
        let mut removed = false;
        while let Some(i) = self.last_index(key) {
            removed = true;
            self.pieces.remove(i);
            // Drop the rest of the line (spaces, `;`, newline) when the entry
            // started its line, so that no blank line is left behind.
            let starts_line = match i.checked_sub(1).map(|j| &self.pieces[j]) {
                None => true,
                Some(Piece::Trivia(t)) => {
                    let tail = t
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(&t[..], |p| &t[p + 1..]);
                    tail.iter().all(|&b| b == b' ' || b == b'\t') && (t.contains(&b'\n') || i == 1)
                }
                Some(Piece::Entry(_)) => false,
            };
            if starts_line {
                if let Some(Piece::Trivia(t)) = self.pieces.get_mut(i) {
                    let mut k = 0;
                    while k < t.len() && matches!(t[k], b' ' | b'\t' | b';') {
                        k += 1;
                    }
                    if t.get(k) == Some(&b'\n') {
                        t.drain(..=k);
                    }
                    if t.is_empty() {
                        self.pieces.remove(i);
                    }
                }
            }
            self.merge_trivia();
        }
        removed
    }

    fn merge_trivia(&mut self) {
        let mut out: Vec<Piece> = Vec::with_capacity(self.pieces.len());
        for p in self.pieces.drain(..) {
            match (out.last_mut(), p) {
                (Some(Piece::Trivia(a)), Piece::Trivia(b)) => a.extend_from_slice(&b),
                (_, p) => out.push(p),
            }
        }
        self.pieces = out;
    }

    /// Canonical formatting that keeps comments: one statement per line,
    /// `key = value` with values written as [`Value::to_source`] (lists with
    /// comments inside are kept verbatim), trailing blanks trimmed, runs of
    /// blank lines collapsed to one, LF line endings, a final newline.
    pub fn canonical(&self) -> Document {
        crate::format::canonical(self)
    }

    pub(crate) fn from_pieces(pieces: Vec<Piece>) -> Self {
        let mut d = Self { pieces };
        d.merge_trivia();
        d
    }

    pub(crate) fn entry_text_is_raw_list_with_comment(e: &Entry) -> bool {
        e.value.is_list() && e.text.contains(&b'#')
    }
}

impl Default for Document {
    fn default() -> Self {
        Self::new()
    }
}

fn check_key(key: &str) -> Result<()> {
    let b = key.as_bytes();
    let ok = b.first().is_some_and(u8::is_ascii_lowercase)
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::Unrepresentable {
            field: "key",
            value: key.to_owned(),
            why: "keys are [a-z][._0-9a-z]*",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# guest\nname = \"web\"  # the name\n\nmemory = 512; vcpus = 2\nvif = [\n  'bridge=br0', # first\n  'bridge=br1',\n]\n";

    #[test]
    fn unedited_round_trip_is_byte_exact() {
        let p = Document::parse_str(SAMPLE, "t").unwrap();
        assert_eq!(p.document.to_bytes(), SAMPLE.as_bytes());
    }

    #[test]
    fn non_utf8_bytes_round_trip() {
        let src = b"name = 'caf\xe9' # \xff\nmemory = 1\n";
        let p = Document::parse(src, "t").unwrap();
        assert_eq!(p.document.to_bytes(), src);
        assert!(p.warnings[0].message.contains("UTF-8"));
        let mut d = p.document;
        d.set("memory", Value::Str("2".into())).unwrap();
        assert_eq!(d.to_bytes(), b"name = 'caf\xe9' # \xff\nmemory = 2\n");
    }

    #[test]
    fn set_changes_only_that_key() {
        let mut d = Document::parse_str(SAMPLE, "t").unwrap().document;
        d.set("memory", Value::Str("1024".into())).unwrap();
        let out = String::from_utf8(d.to_bytes()).unwrap();
        assert_eq!(out, SAMPLE.replace("memory = 512", "memory = 1024"));
    }

    #[test]
    fn set_absent_key_appends_line() {
        let mut d = Document::parse_str("a = 1", "t").unwrap().document;
        d.set("b", Value::Str("x y".into())).unwrap();
        assert_eq!(d.to_bytes(), b"a = 1\nb = 'x y'\n");
    }

    #[test]
    fn append_keeps_multiline_style() {
        let mut d = Document::parse_str(SAMPLE, "t").unwrap().document;
        d.append("vif", Value::Str("bridge=br2".into())).unwrap();
        let out = String::from_utf8(d.to_bytes()).unwrap();
        assert!(
            out.starts_with("# guest\nname = \"web\"  # the name\n\nmemory = 512; vcpus = 2\n"),
            "{out}"
        );
        assert!(
            out.ends_with("vif = [\n    'bridge=br0',\n    'bridge=br1',\n    'bridge=br2',\n]\n"),
            "{out}"
        );
    }

    #[test]
    fn remove_takes_the_whole_line() {
        let mut d = Document::parse_str(SAMPLE, "t").unwrap().document;
        assert!(d.remove("name"));
        let out = String::from_utf8(d.to_bytes()).unwrap();
        // The trailing comment of the removed line stays (it may matter to
        // the reader); the key is gone.
        assert!(!out.contains("name ="), "{out}");
        assert!(d.settings().unwrap().get("name").is_none());
        let mut d = Document::parse_str("a = 1\nb = 2\nc = 3\n", "t")
            .unwrap()
            .document;
        assert!(d.remove("b"));
        assert_eq!(d.to_bytes(), b"a = 1\nc = 3\n");
    }

    #[test]
    fn set_after_stray_character_at_eof_keeps_file_valid() {
        let mut d = Document::parse_str("a = 1 $", "t").unwrap().document;
        d.set("b", Value::Str("2".into())).unwrap();
        assert_eq!(d.to_bytes(), b"a = 1 \nb = 2\n");
        let mut d = Document::parse_str("a = 1\n#", "t").unwrap().document;
        d.set("b", Value::Str("2".into())).unwrap();
        assert_eq!(d.to_bytes(), b"a = 1\n#\nb = 2\n");
    }

    #[test]
    fn surprising_but_accepted_input_warns() {
        let w = |src: &str| Document::parse_str(src, "t").unwrap().warnings;
        assert!(w("a = 1 # c\r\n")[0].message.contains("CRLF"));
        assert!(w("a = 1\na += 2\n")[0].message.contains("joins text"));
        assert!(w("a += 2\n").is_empty());
        assert!(w("a = 1 $")[0].message.contains("stray character"));
        assert!(w("a = \"A\\101B\"\n")[0].message.contains("numeric escape"));
    }

    #[test]
    fn quote_escapes_backslash_and_quote() {
        assert_eq!(quote("it's a\\b\n"), r"'it\'s a\\b\n'");
        assert_eq!(Value::Str("010".into()).to_source(), "'010'");
        assert_eq!(Value::Str("512".into()).to_source(), "512");
    }
}
