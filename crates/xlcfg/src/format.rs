//! Canonical formatting that keeps comments (`drvdom config fmt`).

use crate::document::{Document, Entry, Piece, Value};

/// Lists longer than this on one line are written one item per line.
const MAX_INLINE: usize = 80;

struct Out {
    text: String,
    /// Something other than blanks is on the current line.
    line_used: bool,
    /// Blank lines seen since the last content.
    blanks: usize,
    started: bool,
}

impl Out {
    fn content(&mut self, s: &str) {
        if !self.line_used {
            if self.started && self.blanks > 0 {
                self.text.push('\n');
            }
            self.blanks = 0;
        }
        self.text.push_str(s);
        self.line_used = true;
        self.started = true;
    }

    fn newline(&mut self) {
        if self.line_used {
            self.text.push('\n');
            self.line_used = false;
        } else {
            self.blanks += 1;
        }
    }
}

fn entry_text(e: &Entry) -> Vec<u8> {
    if Document::entry_text_is_raw_list_with_comment(e) {
        // Comments inside a list: keep the list's bytes, minus trailing
        // blanks and carriage returns on each line (strings cannot span
        // lines, so these are never inside a string).
        let lines: Vec<&[u8]> = e
            .text_bytes()
            .split(|&b| b == b'\n')
            .map(|l| {
                let end = l
                    .iter()
                    .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r'))
                    .map_or(0, |p| p + 1);
                &l[..end]
            })
            .collect();
        return lines.join(&b'\n');
    }
    let one = e.value().to_source();
    let v = match e.value() {
        Value::List(items) if items.len() > 1 && one.len() + e.key().len() + 4 > MAX_INLINE => {
            e.value().to_source_multiline()
        }
        _ => one,
    };
    format!("{} {} {v}", e.key(), e.op().as_str()).into_bytes()
}

pub(crate) fn canonical(doc: &Document) -> Document {
    let mut out = Out {
        text: String::new(),
        line_used: false,
        blanks: 0,
        started: false,
    };
    let mut pieces: Vec<Piece> = Vec::new();
    let flush = |out: &mut Out, pieces: &mut Vec<Piece>| {
        if !out.text.is_empty() {
            pieces.push(Piece::Trivia(std::mem::take(&mut out.text).into_bytes()));
        }
    };
    for p in doc.pieces() {
        match p {
            Piece::Entry(e) => {
                if out.line_used {
                    out.newline();
                }
                out.content("");
                flush(&mut out, &mut pieces);
                pieces.push(Piece::Entry(e.with_text(entry_text(e))));
                out.line_used = true;
            }
            Piece::Trivia(t) => {
                let mut i = 0;
                while i < t.len() {
                    match t[i] {
                        b'\n' => {
                            out.newline();
                            i += 1;
                        }
                        b'#' => {
                            let end = t[i..]
                                .iter()
                                .position(|&b| b == b'\n')
                                .map_or(t.len(), |p| i + p);
                            let c = String::from_utf8_lossy(&t[i..end]);
                            let c = c.trim_end();
                            if out.line_used {
                                out.text.push(' ');
                            }
                            out.content(c);
                            i = end;
                        }
                        // Blanks, `;`, and junk xl ignores at end of file.
                        _ => i += 1,
                    }
                }
            }
        }
    }
    if out.line_used {
        out.text.push('\n');
    }
    flush(&mut out, &mut pieces);
    Document::from_pieces(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_keeps_comments_and_splits_statements() {
        let src = "\n\n# head  \nname=\"a\";memory=512 # mem\r\n\n\n\nvif=['bridge=br0' , 'bridge=br1']\n#";
        let d = Document::parse_str(src, "t").unwrap().document.canonical();
        let out = String::from_utf8(d.to_bytes()).unwrap();
        assert_eq!(
            out,
            "# head\nname = 'a'\nmemory = 512 # mem\n\nvif = [ 'bridge=br0', 'bridge=br1' ]\n#\n"
        );
    }

    #[test]
    fn canonical_is_a_fixed_point() {
        let src = "a=1\n\n\nb = [ 'x',\n # c\n 'y' ]   \n";
        let once = Document::parse_str(src, "t").unwrap().document.canonical();
        let twice = Document::parse(&once.to_bytes(), "t")
            .unwrap()
            .document
            .canonical();
        assert_eq!(once.to_bytes(), twice.to_bytes());
    }
}
