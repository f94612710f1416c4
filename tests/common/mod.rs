//! Test helpers: a real `redis-server` on a loopback port and a minimal
//! RESP2 client that turns its replies into `hashkv::Reply`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hashkv::Reply;

/// A redis-server child process, killed on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts redis-server with `extra` config arguments, or returns the reason
/// it cannot. Under CI (env CI set) a missing server is a failure, not a skip.
pub fn start_redis(extra: &[&str]) -> Result<RedisServer, String> {
    let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut args: Vec<String> = vec![
        "--port".into(),
        port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--save".into(),
        String::new(),
        "--appendonly".into(),
        "no".into(),
        "--dir".into(),
        dir.path().display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let child = Command::new(&bin)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {bin}: {e}"))?;
    let server = RedisServer {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(mut c) = RespClient::connect(port) {
            if c.call(&[b"PING".as_slice()]).is_ok() {
                return Ok(server);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err("redis-server did not answer PING within 10 s".into())
}

/// Starts redis-server or, outside CI, prints why the test is skipped.
pub fn redis_or_skip(test: &str, extra: &[&str]) -> Option<RedisServer> {
    match start_redis(extra) {
        Ok(s) => Some(s),
        Err(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: redis-server is required under CI: {why}"
            );
            eprintln!("SKIPPED {test}: {why} (install redis-server to run it)");
            None
        }
    }
}

/// A blocking RESP2 client.
pub struct RespClient {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl RespClient {
    pub fn connect(port: u16) -> std::io::Result<Self> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(RespClient {
            w: s.try_clone()?,
            r: BufReader::new(s),
        })
    }

    pub fn encode(argv: &[&[u8]], out: &mut Vec<u8>) {
        out.extend_from_slice(format!("*{}\r\n", argv.len()).as_bytes());
        for a in argv {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Sends one command; Ok(reply) or Err(error text).
    pub fn call(&mut self, argv: &[&[u8]]) -> std::io::Result<Result<Reply, String>> {
        let mut buf = Vec::new();
        Self::encode(argv, &mut buf);
        self.w.write_all(&buf)?;
        self.read_reply()
    }

    /// Sends many commands in one write and reads all replies (pipelining).
    pub fn pipeline(
        &mut self,
        cmds: &[Vec<Vec<u8>>],
    ) -> std::io::Result<Vec<Result<Reply, String>>> {
        let mut buf = Vec::new();
        for c in cmds {
            let argv: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
            Self::encode(&argv, &mut buf);
        }
        self.w.write_all(&buf)?;
        (0..cmds.len()).map(|_| self.read_reply()).collect()
    }

    fn line(&mut self) -> std::io::Result<Vec<u8>> {
        let mut l = Vec::new();
        self.r.read_until(b'\n', &mut l)?;
        if l.len() < 2 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        l.truncate(l.len() - 2);
        Ok(l)
    }

    pub fn read_reply(&mut self) -> std::io::Result<Result<Reply, String>> {
        let l = self.line()?;
        let rest = String::from_utf8_lossy(&l[1..]).into_owned();
        let num = || rest.parse::<i64>().unwrap_or(0);
        Ok(match l[0] {
            b'+' => Ok(Reply::Status(rest)),
            b'-' => Err(rest),
            b':' => Ok(Reply::Integer(num())),
            b'$' => {
                let n = num();
                if n < 0 {
                    Ok(Reply::Nil)
                } else {
                    let mut b = vec![0u8; n as usize + 2];
                    self.r.read_exact(&mut b)?;
                    b.truncate(n as usize);
                    Ok(Reply::Bulk(b))
                }
            }
            b'*' => {
                let n = num();
                if n < 0 {
                    Ok(Reply::Nil)
                } else {
                    let mut items = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        // An error inside an array (EXEC) is an element.
                        match self.read_reply()? {
                            Ok(r) => items.push(r),
                            Err(e) => items.push(Reply::Error(e)),
                        }
                    }
                    Ok(Reply::Array(items))
                }
            }
            other => return Err(std::io::Error::other(format!("bad RESP type byte {other}"))),
        })
    }
}

/// RSS of a process in bytes (Linux /proc).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A `hashkv ... shell DIR` child fed commands on stdin, whose reply lines
/// (acknowledgements) are collected as they arrive; for crash tests.
pub struct ShellChild {
    child: Child,
    pub stdin: std::process::ChildStdin,
    replies: std::sync::mpsc::Receiver<String>,
    reader: std::thread::JoinHandle<()>,
}

impl ShellChild {
    /// Starts `hashkv ARGS... shell DIR` (ARGS are the global options).
    pub fn spawn(args: &[&str], dir: &std::path::Path) -> ShellChild {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hashkv"))
            .args(args)
            .arg("shell")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting hashkv shell");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, replies) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ShellChild {
            child,
            stdin,
            replies,
            reader,
        }
    }

    /// Sends one line; false once the child is gone.
    pub fn send(&mut self, line: &str) -> bool {
        self.stdin
            .write_all(line.as_bytes())
            .and_then(|_| self.stdin.flush())
            .is_ok()
    }

    /// SIGKILLs the child and returns every reply line it printed.
    pub fn kill(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.reader.join();
        self.replies.try_iter().collect()
    }
}

/// Values at every edge of Redis's integer encodings (listpack widths, the
/// RDB string forms) and strings that only look like integers: how
/// integer-looking values travel is checked with these.
pub const INT_EDGES: [&str; 22] = [
    "0",
    "1",
    "127",
    "128",
    "-1",
    "4095",
    "-4096",
    "32767",
    "-32768",
    "8388607",
    "-8388608",
    "2147483647",
    "-2147483648",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "007",
    "-0",
    "+1",
    " 1",
    "1.5",
    "",
];
