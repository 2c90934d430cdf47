//! The log's writer thread: every log line of the process (`tracing`'s events and the
//! access lines' batches) reaches stderr through it, in the order it was handed over, each
//! message in one piece. A request never waits for stderr: a line costs it a channel send.
//! Not lossy: when the queue is full (stderr slower than the lines come), senders wait.
//!
//! An access batch is handed over as it is (the buffer itself, no copy); an event's line is
//! copied once, out of `tracing`'s per-thread buffer. The thread writes whatever has queued
//! up in one `writev`, straight from the messages.

use std::io::{IoSlice, Write};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

/// Messages that may wait for the writer thread; then senders wait.
const QUEUE: usize = 4096;
/// At most this many messages in one `writev` (below every system's `IOV_MAX`).
const PER_WRITE: usize = 64;

enum Message {
    Lines(Vec<u8>),
    /// Everything sent before has been written: say so.
    Flushed(SyncSender<()>),
}

/// What hands lines to the writer thread; cheap to clone. Also `tracing`'s writer.
#[derive(Clone)]
pub struct LogWriter {
    queue: SyncSender<Message>,
}

/// Waits, when dropped (at the end of `main`), until every line sent so far is written (at
/// most a second).
pub struct FlushOnDrop {
    queue: SyncSender<Message>,
}

/// Starts the writer thread (to stderr).
pub fn start() -> std::io::Result<(LogWriter, FlushOnDrop)> {
    let (queue, lines) = sync_channel(QUEUE);
    std::thread::Builder::new()
        .name("wharf-log".to_owned())
        .spawn(move || write_forever(&lines, &mut std::io::stderr()))?;
    Ok((
        LogWriter {
            queue: queue.clone(),
        },
        FlushOnDrop { queue },
    ))
}

impl LogWriter {
    /// Whole lines, to be written as they are (one message: never interleaved with others).
    pub fn send(&self, lines: Vec<u8>) {
        if !lines.is_empty() {
            // Only a writer thread that is gone refuses: then there is nowhere to write.
            let _ = self.queue.send(Message::Lines(lines));
        }
    }

    /// Waits until every line sent so far (by any thread) is written, at most `timeout`.
    pub fn flush(&self, timeout: Duration) {
        flush(&self.queue, timeout);
    }
}

fn flush(queue: &SyncSender<Message>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let (done, written) = sync_channel(1);
    let mut message = Message::Flushed(done);
    loop {
        match queue.try_send(message) {
            Ok(()) => break,
            Err(TrySendError::Disconnected(_)) => return,
            Err(TrySendError::Full(again)) => {
                if Instant::now() >= deadline {
                    return;
                }
                message = again;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    let _ = written.recv_timeout(deadline.saturating_duration_since(Instant::now()));
}

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        flush(&self.queue, Duration::from_secs(1));
    }
}

/// One event's line: collected while `tracing` writes it, sent as one message when done.
pub struct EventWriter<'a> {
    writer: &'a LogWriter,
    line: Vec<u8>,
}

impl Write for EventWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter<'_> {
    fn drop(&mut self) {
        self.writer.send(std::mem::take(&mut self.line));
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = EventWriter<'a>;

    fn make_writer(&'a self) -> EventWriter<'a> {
        EventWriter {
            writer: self,
            line: Vec::new(),
        }
    }
}

/// The writer thread: waits for a message, takes whatever else has queued up behind it, and
/// writes it all at once. Ends when every sender is gone.
fn write_forever(queue: &Receiver<Message>, out: &mut impl Write) {
    let mut lines: Vec<Vec<u8>> = Vec::with_capacity(PER_WRITE);
    let mut flushed: Vec<SyncSender<()>> = Vec::new();
    while let Ok(first) = queue.recv() {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Lines(text) => lines.push(text),
                Message::Flushed(done) => flushed.push(done),
            }
            if lines.len() < PER_WRITE {
                next = queue.try_recv().ok();
            }
        }
        // A failed write (stderr closed) loses those lines; the next ones are tried anew.
        let _ = write_all(out, &lines);
        lines.clear();
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Every message, in order, in as few writes as the system takes.
fn write_all(out: &mut impl Write, lines: &[Vec<u8>]) -> std::io::Result<()> {
    let mut all = [IoSlice::new(&[]); PER_WRITE];
    for (slice, line) in all.iter_mut().zip(lines) {
        *slice = IoSlice::new(line);
    }
    let mut slices = &mut all[..lines.len().min(PER_WRITE)];
    while !slices.is_empty() {
        match out.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes at most `limit` bytes per write, and one slice at a time: partial writes.
    struct Stingy {
        out: Vec<u8>,
        limit: usize,
    }

    impl Write for Stingy {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.limit);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_messages_are_written_whole_and_in_order() {
        let lines: Vec<Vec<u8>> = (0..10)
            .map(|i| format!("line {i} {}\n", "x".repeat(i * 7)).into_bytes())
            .collect();
        let mut out = Stingy {
            out: Vec::new(),
            limit: 5,
        };
        write_all(&mut out, &lines).expect("written");
        assert_eq!(out.out, lines.concat());

        let (queue, received) = sync_channel(QUEUE);
        let writer = LogWriter { queue };
        let thread = std::thread::spawn(move || {
            let mut out = Stingy {
                out: Vec::new(),
                limit: 3,
            };
            write_forever(&received, &mut out);
            out.out
        });
        let mut expected = Vec::new();
        for line in &lines {
            writer.send(line.clone());
            expected.extend_from_slice(line);
            // An event written in pieces is still one message.
            let mut event = tracing_subscriber::fmt::MakeWriter::make_writer(&writer);
            event.write_all(b"event ").expect("write");
            event.write_all(b"in pieces\n").expect("write");
            drop(event);
            expected.extend_from_slice(b"event in pieces\n");
        }
        writer.flush(Duration::from_secs(5));
        drop(writer);
        assert_eq!(thread.join().expect("thread"), expected);
    }
}
