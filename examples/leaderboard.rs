//! Game leaderboard entries: one hash per player with counters updated by
//! HINCRBY as games finish, and a top-3 computed from a scan of the players.
//!
//! Run: `cargo run --example leaderboard`

use hashkv::{Db, Reply};

fn run() -> hashkv::Result<()> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = Db::open(dir.path())?;
    let players = ["ada", "grace", "linus", "margaret", "dennis"];
    for p in players {
        db.hset(
            format!("player:{p}"),
            &[("name", p), ("score", "0"), ("games", "0")],
        )?;
    }
    // A season of games: deterministic scores.
    for round in 0..50u64 {
        for (i, p) in players.iter().enumerate() {
            let points = ((round * (i as u64 + 3) + i as u64 * 13) % 11) as i64;
            let key = format!("player:{p}");
            db.hincrby(&key, "score", points)?;
            db.hincrby(&key, "games", 1)?;
        }
    }
    db.hincrbyfloat("player:ada", "rating", "1.5")?;
    // Walk every player with SCAN and rank them.
    let mut board: Vec<(i64, String)> = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        let Reply::Array(r) =
            db.execute(&["SCAN", &cursor, "MATCH", "player:*", "COUNT", "100"])?
        else {
            unreachable!("SCAN replies with an array")
        };
        let (Reply::Bulk(next), Reply::Array(keys)) = (&r[0], &r[1]) else {
            unreachable!("SCAN replies with a cursor and keys")
        };
        for k in keys {
            let Reply::Bulk(k) = k else { continue };
            let score = db.hget(k, "score")?.unwrap_or_default();
            let name = db.hget(k, "name")?.unwrap_or_default();
            board.push((
                String::from_utf8_lossy(&score).parse().unwrap_or(0),
                String::from_utf8_lossy(&name).into_owned(),
            ));
        }
        cursor = String::from_utf8_lossy(next).into_owned();
        if cursor == "0" {
            break;
        }
    }
    board.sort_by(|a, b| b.cmp(a));
    println!("top 3 after 50 rounds:");
    for (rank, (score, name)) in board.iter().take(3).enumerate() {
        println!("  {}. {name} {score}", rank + 1);
    }
    assert_eq!(board.len(), players.len());
    assert!(board.windows(2).all(|w| w[0].0 >= w[1].0));
    Ok(())
}

fn main() -> hashkv::Result<()> {
    run()
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs() {
        super::run().unwrap();
    }
}
