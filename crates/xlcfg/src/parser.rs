//! The xl.cfg parser: the grammar of libxlutil's bison parser
//! (`libxlu_cfg_y.y`, SPEC.md §1.3) with its error recovery (a syntax error
//! discards input up to the next newline) and its reporting rules (at most
//! one error per line after a lexical error, SPEC.md §1.7).

use std::ops::Range;

use crate::diag::{Diagnostic, Kind, Locator, Severity};
use crate::document::{Op, Value};
use crate::lexer::{Event, Tok, Token, lex};

/// One assignment as parsed, with its source positions.
#[derive(Debug, Clone)]
pub(crate) struct RawEntry {
    pub key: String,
    pub op: Op,
    pub value: Value,
    /// From the key's first byte to the value's last.
    pub span: Range<usize>,
    pub value_span: Range<usize>,
    /// Line where the value starts (what xl records).
    pub line: usize,
    /// For list values: each top-level item's token span and whether the
    /// token text is exactly `quote + value + quote` (no escapes).
    pub items: Vec<(Range<usize>, bool)>,
}

pub(crate) struct Parsed {
    pub entries: Vec<RawEntry>,
    pub diags: Vec<Diagnostic>,
    pub failed: bool,
}

/// Deepest list nesting accepted.
const MAX_DEPTH: usize = 1000;

struct Parser<'a> {
    src: &'a [u8],
    loc: Locator<'a>,
    file: &'a str,
    events: std::vec::IntoIter<Event>,
    peeked: Option<Token>,
    diags: Vec<Diagnostic>,
    /// Line of the last reported lexical error (`ctx->lexerrlineno`).
    lexerr_line: i64,
    failed: bool,
    python: bool,
    /// Tokens taken since the last syntax error's recovery (bison reports
    /// a new syntax error only after three tokens were shifted).
    since_error: Option<u32>,
}

fn tok_name(t: &Tok) -> &'static str {
    match t {
        Tok::Ident => "IDENT",
        Tok::Number => "NUMBER",
        Tok::Str(_) => "STRING",
        Tok::Eq => "'='",
        Tok::PlusEq => "+=",
        Tok::Comma => "','",
        Tok::LBracket => "'['",
        Tok::RBracket => "']'",
        Tok::Semi => "';'",
        Tok::Newline => "NEWLINE",
        Tok::Eof => "end of file",
    }
}

impl<'a> Parser<'a> {
    fn report_lexical(&mut self, span: Range<usize>, line: usize, kind: Kind, message: &str) {
        self.report_lexical_at(span, line as i64, kind, message);
    }

    /// `check_line` is the scanner's line when the reference reports the
    /// error (one more than the word's line when the word ate its newline).
    fn report_lexical_at(
        &mut self,
        span: Range<usize>,
        check_line: i64,
        kind: Kind,
        message: &str,
    ) {
        self.failed = true;
        let l = check_line;
        if l <= self.lexerr_line {
            return;
        }
        self.lexerr_line = l;
        let mut d = self
            .loc
            .diag(Severity::Error, kind, message, self.file, span.clone());
        d.near = Some(String::from_utf8_lossy(&self.src[span]).into());
        self.diags.push(d);
    }

    fn warn(&mut self, span: Range<usize>, kind: Kind, message: &str) {
        let d = self
            .loc
            .diag(Severity::Warning, kind, message, self.file, span);
        self.diags.push(d);
    }

    /// The next token; lexical and escape problems before it are reported now.
    fn next(&mut self) -> Token {
        if let Some(t) = self.peeked.take() {
            return t;
        }
        loop {
            let Some(ev) = self.events.next() else {
                let n = self.src.len();
                return Token {
                    tok: Tok::Eof,
                    span: n..n,
                    line: 1,
                };
            };
            match ev {
                Event::Token(t) => {
                    if let Some(c) = self.since_error.as_mut() {
                        *c += 1;
                    }
                    let n = t.span.len();
                    if t.tok == Tok::Newline && n > 1 && self.src[t.span.end - 2] == b'\r' {
                        self.warn(
                            t.span.end - 2..t.span.end - 1,
                            Kind::Quirk,
                            "CRLF line ending accepted only because a comment hides the carriage return; xl rejects it on other lines",
                        );
                    }
                    return t;
                }
                Event::Junk { span, line, dropped, python, ate_newline } => {
                    self.python |= python;
                    if dropped {
                        self.warn(
                            span,
                            Kind::Quirk,
                            "stray character at the very end of the file: xl silently ignores it",
                        );
                    } else {
                        let check = line as i64 + i64::from(ate_newline);
                        // A quote the lexer could not match is a string
                        // left open: say so (xl only says "lexical error").
                        let open_quote = matches!(self.src.get(span.start), Some(b'"' | b'\''));
                        let before = self.diags.len();
                        if open_quote {
                            self.report_lexical_at(
                                span,
                                check,
                                Kind::Lexical,
                                "unterminated string: the quote is not closed on this line (xl: lexical error)",
                            );
                            if let Some(d) = self.diags.get_mut(before) {
                                d.code = Some("XLCFG-UNTERMINATED-STRING");
                            }
                        } else {
                            self.report_lexical_at(span, check, Kind::Lexical, "lexical error");
                        }
                    }
                }
                Event::EscapeError { span, line, message } => {
                    self.report_lexical(span, line, Kind::Escape, message);
                }
                Event::EscapeDropped { span, .. } => self.warn(
                    span,
                    Kind::Quirk,
                    "numeric escape: xl reads the digits after `\\N` and drops them, emitting nothing",
                ),
            }
        }
    }

    fn peek(&mut self) -> &Token {
        if self.peeked.is_none() {
            let t = self.next();
            self.peeked = Some(t);
        }
        // The branch above filled it.
        match &self.peeked {
            Some(t) => t,
            None => unreachable!(),
        }
    }

    fn syntax_error(&mut self, t: &Token, expecting: &str) {
        self.failed = true;
        // `t` itself was taken but not shifted.
        let quiet = self.since_error.is_some_and(|c| c.saturating_sub(1) < 3);
        self.since_error = Some(0);
        if quiet {
            return;
        }
        let is_nl = t.tok == Tok::Newline;
        // The line xl prints: one less for a newline token (SPEC.md §1.7).
        let xl_line = if is_nl {
            t.line as i64 - 1
        } else {
            t.line as i64
        };
        if xl_line <= self.lexerr_line {
            return;
        }
        let text = &self.src[t.span.clone()];
        let near = if is_nl && text == b"\n" {
            "<newline>".to_owned()
        } else {
            String::from_utf8_lossy(text).trim_end().to_owned()
        };
        let msg = format!("unexpected {}, expecting {expecting}", tok_name(&t.tok));
        let span = if is_nl {
            t.span.start..t.span.start + 1
        } else {
            t.span.clone()
        };
        let span = if text.first() == Some(&b'#') {
            t.span.end - 1..t.span.end
        } else {
            span
        };
        let mut d = self
            .loc
            .diag(Severity::Error, Kind::Syntax, msg, self.file, span);
        d.near = Some(near.into());
        self.diags.push(d);
    }

    /// Bison's `error NEWLINE` rule: drop tokens up to and including the next
    /// newline. Returns false at end of input.
    fn recover(&mut self, bad: Token) -> bool {
        let mut t = bad;
        loop {
            match t.tok {
                Tok::Newline => {
                    // The newline is shifted as part of `error NEWLINE`.
                    self.since_error = Some(1);
                    return true;
                }
                Tok::Eof => return false,
                _ => t = self.next(),
            }
        }
    }

    fn atom(t: &Token, src: &[u8]) -> Option<Value> {
        match &t.tok {
            Tok::Number => Some(Value::Str(
                String::from_utf8_lossy(&src[t.span.clone()]).into_owned(),
            )),
            Tok::Str(v) => Some(Value::Str(String::from_utf8_lossy(v).into_owned())),
            _ => None,
        }
    }

    fn skip_newlines(&mut self) {
        while self.peek().tok == Tok::Newline {
            self.next();
        }
    }

    /// Parse a value whose first token is `first`. On error returns the
    /// offending token.
    fn value(
        &mut self,
        first: Token,
        items: Option<&mut Vec<(Range<usize>, bool)>>,
        depth: usize,
    ) -> Result<(Value, usize), Token> {
        if let Tok::Str(raw) = &first.tok {
            if std::str::from_utf8(raw).is_err() {
                self.warn(
                    first.span.clone(),
                    Kind::Value,
                    "string is not valid UTF-8: drvdom shows (and would write) it with U+FFFD replacement characters",
                );
            }
        }
        if let Some(v) = Self::atom(&first, self.src) {
            return Ok((v, first.span.end));
        }
        if first.tok != Tok::LBracket {
            self.syntax_error(&first, "STRING or NUMBER or '['");
            return Err(first);
        }
        if depth >= MAX_DEPTH {
            // Bison's parser stack is bounded too (YYMAXDEPTH); refuse
            // rather than recurse without limit.
            self.syntax_error(&first, "fewer nested lists (nesting too deep)");
            return Err(first);
        }
        let mut list = Vec::new();
        let mut items = items;
        self.skip_newlines();
        let t = self.next();
        if t.tok == Tok::RBracket {
            return Ok((Value::List(list), t.span.end));
        }
        let mut t = t;
        loop {
            let span = t.span.clone();
            let plain = match &t.tok {
                Tok::Str(v) => v.len() + 2 == span.len(),
                _ => matches!(t.tok, Tok::Number),
            };
            if !matches!(t.tok, Tok::Str(_) | Tok::Number | Tok::LBracket) {
                self.syntax_error(&t, "STRING or NUMBER or '[' or ']'");
                return Err(t);
            }
            let (v, _) = self.value(t, None, depth + 1)?;
            if let Some(items) = items.as_deref_mut() {
                items.push((span, plain));
            }
            list.push(v);
            self.skip_newlines();
            let sep = self.next();
            match sep.tok {
                Tok::RBracket => return Ok((Value::List(list), sep.span.end)),
                Tok::Comma => {
                    self.skip_newlines();
                    let n = self.next();
                    if n.tok == Tok::RBracket {
                        return Ok((Value::List(list), n.span.end));
                    }
                    if !matches!(n.tok, Tok::Str(_) | Tok::Number | Tok::LBracket) {
                        self.syntax_error(&n, "STRING or NUMBER or '[' or ']'");
                        return Err(n);
                    }
                    t = n;
                }
                _ => {
                    self.syntax_error(&sep, "',' or ']'");
                    return Err(sep);
                }
            }
        }
    }

    fn run(&mut self) -> Vec<RawEntry> {
        let mut entries: Vec<RawEntry> = Vec::new();
        // Each key's effective value type (a list or a string); `+=` keeps it.
        let mut types: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
        loop {
            let t = self.next();
            match t.tok {
                Tok::Eof => break,
                Tok::Newline | Tok::Semi => continue,
                Tok::Ident => {}
                _ => {
                    self.syntax_error(&t, "IDENT or end of statement");
                    if !self.recover(t) {
                        break;
                    }
                    continue;
                }
            }
            let key_tok = t;
            let op_tok = self.next();
            let op = match op_tok.tok {
                Tok::Eq => Op::Assign,
                Tok::PlusEq => Op::Append,
                _ => {
                    self.syntax_error(&op_tok, "+= or '='");
                    if !self.recover(op_tok) {
                        break;
                    }
                    continue;
                }
            };
            let first = self.next();
            let vstart = first.span.start;
            let vline = first.line;
            let mut items = Vec::new();
            let (value, vend) = match self.value(first, Some(&mut items), 0) {
                Ok(v) => v,
                Err(bad) => {
                    if !self.recover(bad) {
                        break;
                    }
                    continue;
                }
            };
            let key = String::from_utf8_lossy(&self.src[key_tok.span.clone()]).into_owned();
            let entry = RawEntry {
                key,
                op,
                value,
                span: key_tok.span.start..vend,
                value_span: vstart..vend,
                line: vline,
                items,
            };
            // `xlu__cfg_set_store`: nothing is stored once an error happened;
            // `+=` between a list and a string is an error reported at the value.
            if !self.failed {
                let is_list = entry.value.is_list();
                let prev = match op {
                    Op::Assign => types.insert(entry.key.clone(), is_list).map(|_| is_list),
                    Op::Append => match types.get(&entry.key) {
                        Some(&t) => Some(t),
                        None => {
                            types.insert(entry.key.clone(), is_list);
                            None
                        }
                    },
                };
                if op == Op::Append && prev == Some(false) && !is_list {
                    if let Value::Str(v) = &entry.value {
                        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
                            self.warn(
                                entry.value_span.clone(),
                                Kind::Quirk,
                                &format!(
                                    "`{} += {v}` joins text, it does not add; xl can no longer read `{}` as a number",
                                    entry.key, entry.key
                                ),
                            );
                        }
                    }
                }
                if op == Op::Append {
                    if let Some(prev_is_list) = prev {
                        if prev_is_list != is_list {
                            let span = entry.value_span.clone();
                            self.report_lexical(
                                span,
                                vline,
                                Kind::TypeMismatch,
                                "can't add [list] to \"string\" or vice versa",
                            );
                        }
                    }
                }
                entries.push(entry);
            }
            let end = self.next();
            match end.tok {
                Tok::Newline | Tok::Semi => {}
                Tok::Eof => break,
                _ => {
                    self.syntax_error(&end, "end of statement (newline or ';')");
                    if !self.recover(end) {
                        break;
                    }
                }
            }
        }
        entries
    }
}

pub(crate) fn parse(src: &[u8], file: &str) -> Parsed {
    let mut p = Parser {
        src,
        loc: Locator::new(src),
        file,
        events: lex(src).into_iter(),
        peeked: None,
        diags: Vec::new(),
        lexerr_line: -1,
        failed: false,
        python: false,
        since_error: None,
    };
    let entries = p.run();
    if p.failed && p.python {
        p.diags.push(Diagnostic::unplaced(
            Severity::Warning,
            Kind::Syntax,
            "the file looks like it contains Python code; xl no longer runs Python (see https://wiki.xen.org/wiki/PythonInXlConfig)",
            file,
        ));
    }
    Parsed {
        entries,
        diags: p.diags,
        failed: p.failed,
    }
}
