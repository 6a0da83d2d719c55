//! Diagnostics: errors and warnings with a position, rendered with a caret
//! under the offending text, and a serde form for machines.

use std::fmt::Write as _;
use std::ops::Range;

use serde::Serialize;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// `xl create` would refuse the file.
    Error,
    /// Accepted, but probably not what the author meant.
    Warning,
}

/// What kind of problem a diagnostic reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Kind {
    /// A character or word the lexer does not accept.
    Lexical,
    /// A token in the wrong place.
    Syntax,
    /// A bad backslash escape in a quoted string.
    Escape,
    /// `+=` between a list and a string.
    TypeMismatch,
    /// A key's value has the wrong type or form for xl (getter warnings).
    Value,
    /// A `vif`, `pci` or `disk` spec string problem.
    Device,
    /// A top-level key problem that `xl create` treats as fatal.
    Domain,
    /// A driver-domain consistency check across keys or files.
    Sanity,
    /// Something the reference implementation does silently that is
    /// probably not what the author meant.
    Quirk,
    /// A host topology file problem (crate `topology`); see `code`.
    Topology,
}

impl Kind {
    /// The code a diagnostic of this kind carries unless its check names
    /// a more precise one (`XLCFG-UNKNOWN-KEY`): stable, for scripts.
    pub fn default_code(self) -> &'static str {
        match self {
            Kind::Lexical => "XLCFG-LEXICAL",
            Kind::Syntax => "XLCFG-SYNTAX",
            Kind::Escape => "XLCFG-ESCAPE",
            Kind::TypeMismatch => "XLCFG-TYPE-MISMATCH",
            Kind::Value => "XLCFG-VALUE",
            Kind::Device => "XLCFG-DEVICE",
            Kind::Domain => "XLCFG-DOMAIN",
            Kind::Sanity => "XLCFG-SANITY",
            Kind::Quirk => "XLCFG-QUIRK",
            Kind::Topology => "TOPO",
        }
    }
}

/// One error or warning, with its position in a source file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The kind of problem.
    pub kind: Kind,
    /// What is wrong (lowercase, no trailing period).
    pub message: String,
    /// Source name (file path or `<input>`).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Byte range in the source.
    pub span: Range<usize>,
    /// The text the reference implementation names in its message
    /// (`near `…'`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub near: Option<Box<str>>,
    /// A stable code naming the check (`TOPO-UNKNOWN-KEY`,
    /// `XLCFG-UNKNOWN-KEY`; by default the kind's [`Kind::default_code`]),
    /// for scripts and documentation; shown as `error[CODE]: ...`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
}

impl Diagnostic {
    /// Build a diagnostic at `span` of `source`, computing line and column.
    pub fn at(
        severity: Severity,
        kind: Kind,
        message: impl Into<String>,
        file: &str,
        source: &[u8],
        span: Range<usize>,
    ) -> Self {
        let start = span.start.min(source.len());
        let (line, column) = line_col(source, start);
        Self {
            severity,
            kind,
            message: message.into(),
            file: file.to_owned(),
            line,
            column,
            span: start..span.end.clamp(start, source.len()),
            near: None,
            code: Some(kind.default_code()),
        }
    }

    /// A diagnostic with no useful position (line 0).
    pub fn unplaced(
        severity: Severity,
        kind: Kind,
        message: impl Into<String>,
        file: &str,
    ) -> Self {
        Self {
            severity,
            kind,
            message: message.into(),
            file: file.to_owned(),
            line: 0,
            column: 0,
            span: 0..0,
            near: None,
            code: Some(kind.default_code()),
        }
    }

    /// The same diagnostic with a stable code.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Render for humans: a header line, the source line and a caret line.
    ///
    /// `source` must be the text the diagnostic was made from; without it
    /// (or with line 0) only the header is printed.
    pub fn render(&self, source: Option<&[u8]>) -> String {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = String::new();
        match &self.code {
            Some(code) => {
                let _ = writeln!(out, "{sev}[{code}]: {}", self.message);
            }
            None => {
                let _ = writeln!(out, "{sev}: {}", self.message);
            }
        }
        if self.line == 0 {
            let _ = writeln!(out, "  --> {}", self.file);
            return out;
        }
        let _ = writeln!(out, "  --> {}:{}:{}", self.file, self.line, self.column);
        let Some(src) = source else { return out };
        let line_start = src[..self.span.start.min(src.len())]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        let line_end = src[line_start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(src.len(), |p| line_start + p);
        let text = String::from_utf8_lossy(&src[line_start..line_end]);
        let shown: String = text
            .chars()
            .map(|c| match c {
                '\t' => ' ',
                c if c.is_control() => '?',
                c => c,
            })
            .collect();
        let num = self.line.to_string();
        let pad = " ".repeat(num.len());
        let col0 = self.column.saturating_sub(1);
        let end_in_line = self.span.end.min(line_end).max(self.span.start);
        let width = String::from_utf8_lossy(
            &src[self.span.start.min(src.len())..end_in_line.min(src.len())],
        )
        .chars()
        .count()
        .max(1);
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{num} | {}", shown.trim_end());
        let _ = writeln!(out, "{pad} | {}{}", " ".repeat(col0), "^".repeat(width));
        out
    }
}

/// Finds line and column of many offsets in one source without rescanning
/// it each time (a file can have one diagnostic per line, or per list item).
pub(crate) struct Locator<'a> {
    src: &'a [u8],
    /// Byte offset where each line starts.
    starts: Vec<usize>,
    /// Last answer (pos, line, column), to count on from it on the same line.
    last: std::cell::Cell<(usize, usize, usize)>,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(src: &'a [u8]) -> Self {
        let mut starts = vec![0];
        starts.extend(
            src.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Self {
            src,
            starts,
            last: std::cell::Cell::new((0, 1, 1)),
        }
    }

    /// 1-based line and character column of `pos`.
    pub(crate) fn locate(&self, pos: usize) -> (usize, usize) {
        let pos = pos.min(self.src.len());
        let line0 = self.starts.partition_point(|&s| s <= pos) - 1;
        let start = self.starts[line0];
        let (lpos, lline, lcol) = self.last.get();
        let (from, col0) = if lline == line0 + 1 && lpos <= pos && lpos >= start {
            (lpos, lcol)
        } else {
            (start, 1)
        };
        let col = col0 + count_chars(&self.src[from..pos]);
        self.last.set((pos, line0 + 1, col));
        (line0 + 1, col)
    }

    /// A diagnostic at `span`.
    pub(crate) fn diag(
        &self,
        severity: Severity,
        kind: Kind,
        message: impl Into<String>,
        file: &str,
        span: Range<usize>,
    ) -> Diagnostic {
        let start = span.start.min(self.src.len());
        let (line, column) = self.locate(start);
        Diagnostic {
            severity,
            kind,
            message: message.into(),
            file: file.to_owned(),
            line,
            column,
            span: start..span.end.clamp(start, self.src.len()),
            near: None,
            code: Some(kind.default_code()),
        }
    }
}

/// Characters in a byte slice read as (lossy) UTF-8: every byte that does
/// not continue a multi-byte sequence starts one.
fn count_chars(b: &[u8]) -> usize {
    b.iter().filter(|&&c| (c & 0xc0) != 0x80).count()
}

/// 1-based line and character column of byte offset `pos`.
pub(crate) fn line_col(source: &[u8], pos: usize) -> (usize, usize) {
    let pos = pos.min(source.len());
    let before = &source[..pos];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&source[line_start..pos])
        .chars()
        .count()
        + 1;
    (line, column)
}

/// Render every diagnostic of one source, errors and warnings in order.
pub fn render_all(diags: &[Diagnostic], source: Option<&[u8]>) -> String {
    diags
        .iter()
        .map(|d| d.render(source))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_points_at_offending_word() {
        let src = b"a = 1\nb = $x\n";
        let d = Diagnostic::at(
            Severity::Error,
            Kind::Lexical,
            "lexical error",
            "f.cfg",
            src,
            10..12,
        );
        assert_eq!((d.line, d.column), (2, 5));
        let r = d.render(Some(src));
        assert!(r.contains("--> f.cfg:2:5"), "{r}");
        assert!(r.contains("2 | b = $x\n"), "{r}");
        assert!(r.ends_with("  |     ^^\n"), "{r}");
    }

    #[test]
    fn locator_agrees_with_line_col() {
        let src = "a = 1\nb = \"é\" $x\n\nc\n".as_bytes();
        let loc = Locator::new(src);
        for pos in (0..=src.len()).rev().chain(0..=src.len()) {
            if std::str::from_utf8(&src[..pos]).is_ok() {
                assert_eq!(loc.locate(pos), line_col(src, pos), "pos {pos}");
            }
        }
    }

    #[test]
    fn column_counts_characters_not_bytes() {
        let src = "a = \"é\" $\n".as_bytes();
        let (l, c) = line_col(src, 9);
        assert_eq!((l, c), (1, 9));
    }
}
