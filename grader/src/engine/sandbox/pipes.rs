//! The child's standard streams: bounded capture of stdout/stderr and feeding stdin, each on its
//! own thread so that a full pipe never blocks the child or the supervisor.

use std::io::{self, Read, Write};
use std::thread::{self, JoinHandle};

/// Bytes kept from one output stream.
#[derive(Debug, Default)]
pub(super) struct Captured {
    pub(super) bytes: Vec<u8>,
    /// More bytes arrived than were kept.
    pub(super) truncated: bool,
}

/// A thread reading one output stream to its end, keeping the first `cap` bytes and draining (and
/// discarding) the rest so that the writer never blocks.
pub(super) struct Capture(JoinHandle<Captured>);

impl Capture {
    pub(super) fn spawn(mut reader: impl Read + Send + 'static, cap: usize) -> io::Result<Capture> {
        let handle = thread::Builder::new()
            .name("sandbox-capture".into())
            .spawn(move || {
                let mut captured = Captured::default();
                let mut buffer = vec![0; 64 * 1024];
                loop {
                    match reader.read(&mut buffer) {
                        Ok(0) => break,
                        Ok(n) => {
                            let room = cap.saturating_sub(captured.bytes.len());
                            captured.bytes.extend_from_slice(&buffer[..n.min(room)]);
                            captured.truncated |= n > room;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                captured
            })?;
        Ok(Capture(handle))
    }

    /// Waits for the end of the stream (every writer gone).
    pub(super) fn finish(self) -> Captured {
        self.0.join().unwrap_or_default()
    }
}

/// Writes `input` to the child's stdin on a thread, then closes it; a child that stops reading
/// (broken pipe) just ends the feeding.
pub(super) fn feed(
    mut writer: impl Write + Send + 'static,
    input: Vec<u8>,
) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("sandbox-stdin".into())
        .spawn(move || {
            let _ = writer.write_all(&input);
        })
}
