//! A text buffer that several writers share: the runner's `encoding.log`, and whisper.cpp's
//! load log that the engine reads to learn where the model runs.

use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct SharedLog(Arc<Mutex<Vec<u8>>>);

impl Write for SharedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedLog {
    /// Everything written so far (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        self.0
            .lock()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_write_to_one_buffer() {
        let log = SharedLog::default();
        let mut a = log.clone();
        let mut b = log.clone();
        write!(a, "one ").unwrap();
        writeln!(b, "two").unwrap();
        assert_eq!(log.text(), "one two\n");
    }
}
