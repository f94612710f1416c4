//! README.md's transcript of the tool ("The tool") runs as shown: each
//! `$ hashkv ...` line is run in a fresh folder (the shell's prompt lines
//! fed to it on standard input) and its output compared with the lines
//! under it. Numbers that change from run to run (times, ages, sizes of
//! files whose timestamps vary) are compared as "some number"; a command
//! piped into another program (redis-cli) is left out.

use std::io::Write;
use std::process::{Command, Stdio};

/// The first ```text block after `heading`.
fn block(readme: &str, heading: &str) -> Vec<String> {
    let at = readme.find(heading).expect("the heading is in README.md");
    let rest = &readme[at..];
    let start = rest.find("```text\n").expect("a text block") + "```text\n".len();
    let end = rest[start..].find("```").expect("the block ends");
    rest[start..start + end]
        .lines()
        .map(str::to_string)
        .collect()
}

/// `line` with every run of digits as `#`, for lines whose numbers vary.
fn loose(line: &str) -> String {
    let mut out = String::new();
    let mut in_digits = false;
    for c in line.chars() {
        if c.is_ascii_digit() || (in_digits && c == '.') {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.push(c);
        }
    }
    out
}

fn varies(line: &str) -> bool {
    ["age_secs", "writers held", " in 0", "memory_bytes"]
        .iter()
        .any(|w| line.contains(w))
}

/// Drops a trailing `# comment` written after two spaces.
fn command_of(line: &str) -> String {
    let c = line.trim_start_matches("$ ");
    match c.find("  #") {
        Some(i) => c[..i].trim_end().to_string(),
        None => c.trim_end().to_string(),
    }
}

#[test]
fn the_tool_transcript_in_the_readme_runs_as_shown() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let lines = block(&readme, "## The tool");
    let dir = tempfile::tempdir().unwrap();
    let mut i = 0;
    let mut ran = 0;
    while i < lines.len() {
        let line = &lines[i];
        assert!(line.starts_with("$ "), "line {i} of the block: {line}");
        let cmd = command_of(line);
        i += 1;
        let mut input = String::new();
        let mut expected = Vec::new();
        while i < lines.len() && !lines[i].starts_with("$ ") {
            let l = &lines[i];
            if let Some(c) = l.strip_prefix("hashkv data> ") {
                if c != "^D" {
                    input.push_str(c);
                    input.push('\n');
                }
            } else {
                expected.push(l.clone());
            }
            i += 1;
        }
        if cmd.contains('|') {
            continue;
        }
        let words: Vec<&str> = cmd.split_whitespace().collect();
        assert_eq!(words[0], "hashkv");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hashkv"))
            .args(&words[1..])
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&out.stderr).lines())
            .map(str::to_string)
            .collect();
        assert_eq!(got.len(), expected.len(), "{cmd}: got {got:#?}");
        for (g, e) in got.iter().zip(&expected) {
            if varies(e) {
                assert_eq!(loose(g), loose(e), "{cmd}");
            } else {
                assert_eq!(g, e, "{cmd}");
            }
        }
        ran += 1;
    }
    assert!(ran >= 6, "the transcript's commands ran: {ran}");
}
