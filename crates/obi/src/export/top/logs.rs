//! Where log lines go while `obi top` draws: the screen belongs to the view,
//! so lines written to stderr would tear it. While [`capture`] is on, each
//! line is kept in memory instead (the last [`KEPT`], shown in the view's
//! log pane); when the view ends, lines go to stderr again.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::fmt::MakeWriter;

/// Lines kept for the pane.
pub(crate) const KEPT: usize = 200;

static CAPTURING: AtomicBool = AtomicBool::new(false);
static LINES: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());

/// Keeps log lines in memory (`true`) or writes them to stderr (`false`).
pub(crate) fn capture(on: bool) {
    CAPTURING.store(on, Ordering::SeqCst);
}

/// The last `n` lines kept, oldest first.
pub(crate) fn last(n: usize) -> Vec<String> {
    let lines = LINES.lock().unwrap_or_else(|e| e.into_inner());
    lines.iter().skip(lines.len().saturating_sub(n)).cloned().collect()
}

fn keep(buf: &[u8]) {
    let mut lines = LINES.lock().unwrap_or_else(|e| e.into_inner());
    for line in String::from_utf8_lossy(buf).lines() {
        if lines.len() == KEPT {
            lines.pop_front();
        }
        lines.push_back(line.to_string());
    }
}

/// The log writer of `obi top` (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PaneOrStderr;

pub(crate) enum PaneWriter {
    Pane,
    /// Locked for the one line being written, as the agent's own logger does.
    Stderr(io::StderrLock<'static>),
}

impl Write for PaneWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }
    /// The log layer writes each line with one call.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            PaneWriter::Pane => {
                keep(buf);
                Ok(())
            }
            PaneWriter::Stderr(w) => {
                w.write_all(buf)?;
                w.flush()
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            PaneWriter::Pane => Ok(()),
            PaneWriter::Stderr(w) => w.flush(),
        }
    }
}

impl<'a> MakeWriter<'a> for PaneOrStderr {
    type Writer = PaneWriter;
    fn make_writer(&'a self) -> PaneWriter {
        if CAPTURING.load(Ordering::Relaxed) { PaneWriter::Pane } else { PaneWriter::Stderr(io::stderr().lock()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_go_to_the_pane_only_while_capturing() {
        capture(true);
        for i in 0..KEPT + 3 {
            PaneOrStderr.make_writer().write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        capture(false);
        assert!(matches!(PaneOrStderr.make_writer(), PaneWriter::Stderr(_)));
        let kept = last(2);
        assert_eq!(kept, [format!("line {}", KEPT + 1), format!("line {}", KEPT + 2)]);
        assert_eq!(last(usize::MAX).len(), KEPT);
    }
}
