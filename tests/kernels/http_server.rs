//! The kernel matrix's guest HTTP/1.1 server: one process, one thread, the
//! accepted socket used where accept put it (the guest has no python, and
//! busybox httpd's fork-and-dup2 model is a separate case of issue #17).
//! Built static by `initramfs.sh` with plain rustc: `http_server PORT`.
use std::io::{Read, Write};
use std::net::TcpListener;

fn main() -> std::io::Result<()> {
    let port = std::env::args().nth(1).unwrap_or_else(|| "8080".into());
    let listener = TcpListener::bind(format!("127.0.0.1:{port}"))?;
    println!("ready {port}");
    for stream in listener.incoming() {
        let mut stream = stream?;
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf)? {
                0 => break,
                n => request.extend_from_slice(&buf[..n]),
            }
        }
        let body = b"hello from the kernel matrix\n";
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
    }
    Ok(())
}
