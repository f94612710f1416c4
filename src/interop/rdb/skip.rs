//! Skipping the values of types hashkv does not store, by each type's
//! grammar (Redis's `rdb.c`): strings, lists, sets, sorted sets, module
//! values (self-describing opcodes) and streams with their consumer
//! groups, and naming each type for the import's summary.

use super::input::{Bad, Input, Parse};

/// The name of a non-hash object type, for the summary; `None` for a
/// type the reader does not know.
pub(super) fn type_name(t: u8) -> Option<&'static str> {
    Some(match t {
        0 => "string",
        1 | 10 | 14 | 18 => "list",
        2 | 11 | 20 => "set",
        3 | 5 | 12 | 17 => "sorted set",
        6 | 7 => "module",
        15 | 19 | 21 => "stream",
        _ => return None,
    })
}

/// Skips the value of a non-hash record by its type's grammar.
pub(super) fn skip_value(inp: &mut Input, s: &mut Vec<u8>, t: u8, at: u64) -> Parse<()> {
    match t {
        0 | 10 | 11 | 12 | 17 | 20 => inp.skip_string(s, "value")?,
        1 | 2 | 14 => {
            let n = inp.len("element count")?;
            for _ in 0..n {
                inp.skip_string(s, "element")?;
            }
        }
        3 => {
            let n = inp.len("member count")?;
            for _ in 0..n {
                inp.skip_string(s, "member")?;
                let l = inp.byte("score")?;
                if l < 253 {
                    inp.skip(u64::from(l), "score", s)?;
                }
            }
        }
        5 => {
            let n = inp.len("member count")?;
            for _ in 0..n {
                inp.skip_string(s, "member")?;
                inp.skip(8, "score", s)?;
            }
        }
        18 => {
            let n = inp.len("node count")?;
            for _ in 0..n {
                inp.len("node container")?;
                inp.skip_string(s, "node")?;
            }
        }
        7 => {
            inp.len("module id")?;
            skip_module_data(inp, s, false)?;
        }
        15 | 19 | 21 => skip_stream(inp, s, t)?,
        6 => {
            return Err(Bad(
                at,
                "a module value of the pre-release format (type 6), not supported".into(),
            ))
        }
        _ => return Err(Bad(at, format!("unknown RDB object type {t}"))),
    }
    Ok(())
}

/// Module data: opcodes and values until opcode 0 (`aux`: the
/// `when_opcode, when` pair of MODULE_AUX comes first).
pub(super) fn skip_module_data(inp: &mut Input, s: &mut Vec<u8>, aux: bool) -> Parse<()> {
    if aux {
        inp.len("module when opcode")?;
        inp.len("module when")?;
    }
    loop {
        let at = inp.offset;
        match inp.len("module opcode")? {
            0 => return Ok(()),
            1 | 2 => {
                inp.len("module integer")?;
            }
            3 => inp.skip(4, "module float", s)?,
            4 => inp.skip(8, "module double", s)?,
            5 => inp.skip_string(s, "module string")?,
            op => return Err(Bad(at, format!("unknown module data opcode {op}"))),
        }
    }
}

fn skip_stream(inp: &mut Input, s: &mut Vec<u8>, t: u8) -> Parse<()> {
    let nodes = inp.len("stream node count")?;
    for _ in 0..nodes {
        inp.skip_string(s, "stream node key")?;
        inp.skip_string(s, "stream node")?;
    }
    for what in ["stream length", "stream last id ms", "stream last id seq"] {
        inp.len(what)?;
    }
    if t >= 19 {
        for what in [
            "first id ms",
            "first id seq",
            "max deleted ms",
            "max deleted seq",
            "entries added",
        ] {
            inp.len(what)?;
        }
    }
    let groups = inp.len("consumer group count")?;
    for _ in 0..groups {
        inp.skip_string(s, "group name")?;
        inp.len("group id ms")?;
        inp.len("group id seq")?;
        if t >= 19 {
            inp.len("group entries read")?;
        }
        let pel = inp.len("pending count")?;
        for _ in 0..pel {
            inp.skip(16 + 8, "pending entry", s)?;
            inp.len("delivery count")?;
        }
        let consumers = inp.len("consumer count")?;
        for _ in 0..consumers {
            inp.skip_string(s, "consumer name")?;
            inp.skip(8, "seen time", s)?;
            if t >= 21 {
                inp.skip(8, "active time", s)?;
            }
            let n = inp.len("consumer pending count")?;
            inp.skip(n.saturating_mul(16), "consumer pending ids", s)?;
        }
    }
    Ok(())
}
