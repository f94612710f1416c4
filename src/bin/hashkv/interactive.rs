//! The shell on a terminal: a `hashkv DIR> ` prompt with line editing
//! (rustyline), history kept in `~/.hashkv_history` (or `$HASHKV_HISTFILE`),
//! completion of command names and hints of their arguments as redis-cli
//! shows them.

use std::borrow::Cow;
use std::io::Write;
use std::path::PathBuf;

use hashkv::Db;
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

struct Hints;

impl Hinter for Hints {
    type Hint = String;
    fn hint(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> Option<String> {
        if pos < line.len() {
            return None;
        }
        hashkv::shell::hint(line)
    }
}

impl Completer for Hints {
    type Candidate = String;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let head = &line[..pos];
        if head.contains(char::is_whitespace) {
            return Ok((pos, Vec::new()));
        }
        let lower = head.chars().all(|c| !c.is_ascii_uppercase()) && !head.is_empty();
        let names = hashkv::shell::SYNTAX
            .iter()
            .filter(|(n, _)| n.len() >= head.len() && n[..head.len()].eq_ignore_ascii_case(head))
            .map(|(n, _)| {
                if lower {
                    n.to_ascii_lowercase()
                } else {
                    (*n).to_owned()
                }
            })
            .collect();
        Ok((0, names))
    }
}

impl Highlighter for Hints {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        Cow::Owned(format!("\x1b[90m{hint}\x1b[0m"))
    }
}

impl Validator for Hints {}
impl Helper for Hints {}

/// Where history is kept.
fn history_file() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HASHKV_HISTFILE") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".hashkv_history"))
}

/// Runs the interactive shell until end of input (Ctrl-D), Ctrl-C, QUIT or
/// EXIT.
pub fn run(db: &Db, prompt: &str) -> Result<(), String> {
    let mut rl: Editor<Hints, DefaultHistory> =
        Editor::new().map_err(|e| format!("hashkv: shell: cannot start line editing: {e}"))?;
    rl.set_helper(Some(Hints));
    let history = history_file();
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    let mut out = Vec::new();
    let mut session = db.session();
    loop {
        match rl.readline(prompt) {
            Ok(line) => {
                if line.trim().is_empty() {
                    continue;
                }
                let _ = rl.add_history_entry(line.as_str());
                if let Some(h) = &history {
                    // Saved per line, so a killed shell keeps what was typed.
                    let _ = rl.save_history(h);
                }
                out.clear();
                let go_on =
                    hashkv::shell::run_session_line(&mut session, line.as_bytes(), &mut out);
                let mut stdout = std::io::stdout().lock();
                stdout
                    .write_all(&out)
                    .and_then(|()| stdout.flush())
                    .map_err(|e| format!("hashkv: shell: {e}"))?;
                if !go_on {
                    return Ok(());
                }
            }
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => return Ok(()),
            Err(e) => return Err(format!("hashkv: shell: {e}")),
        }
    }
}
