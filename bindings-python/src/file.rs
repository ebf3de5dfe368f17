//! Streamed values as file objects: `Store.open(key, "rb")` reads with
//! `Storage::read` chunk by chunk, `Store.open(key, "wb")` writes with
//! `Storage::write` and publishes on close. Memory stays bounded by one
//! chunk whatever the value's size.
//!
//! The native classes here do the work; `tierfs._io` wraps them in
//! `io.RawIOBase` subclasses. `AsyncStore.open` returns the async variants.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyType};
use tierfs_core::{ByteStream, Error, ErrorKind, Key, ObjectMeta, PutOptions, Session, Storage, ValueWriter};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

use crate::convert::{value, Stat};
use crate::errors::{to_py, IntoPy};
use crate::runtime::{block_on, run};

/// Chunks handed to `ValueWriter::write`.
pub const WRITE_CHUNK: usize = 4 << 20;
/// Most bytes one `readinto` step takes from the stream before copying them.
const READ_STEP: usize = 4 << 20;
/// Copies larger than this run without the GIL.
const DETACHED_COPY: usize = 1 << 20;

/// Joins `pieces` into one `bytes` object, copying without the GIL when large.
pub fn to_pybytes<'py>(py: Python<'py>, pieces: &[Bytes]) -> PyResult<Bound<'py, PyBytes>> {
    let total: usize = pieces.iter().map(Bytes::len).sum();
    if let [one] = pieces {
        if total <= DETACHED_COPY {
            return Ok(PyBytes::new(py, one));
        }
    }
    if total <= DETACHED_COPY {
        return PyBytes::new_with(py, total, |buf| {
            let mut at = 0;
            for p in pieces {
                buf[at..at + p.len()].copy_from_slice(p);
                at += p.len();
            }
            Ok(())
        });
    }
    let len =
        isize::try_from(total).map_err(|_| pyo3::exceptions::PyOverflowError::new_err("value too large"))?;
    // SAFETY: `PyBytes_FromStringAndSize(NULL, len)` returns a new `bytes`
    // object (or NULL with an exception set) whose `len`-byte buffer is
    // uninitialised and reachable only through the reference we hold.
    let object = unsafe { pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), len) };
    // SAFETY: `object` is a new (owned) reference or NULL.
    let object = unsafe { Bound::from_owned_ptr_or_err(py, object)? };
    // SAFETY: `object` is a `bytes` object, so this is its buffer of `len` bytes.
    let target = Buffer(unsafe { pyo3::ffi::PyBytes_AsString(object.as_ptr()) }.cast::<u8>());
    py.detach(|| {
        let mut at = 0;
        for p in pieces {
            // SAFETY: the pieces add up to `len`, so every copy stays inside
            // the buffer; no Python code can see the object before it is
            // returned, so nothing else reads or writes the buffer meanwhile.
            unsafe { std::ptr::copy_nonoverlapping(p.as_ptr(), target.at(at), p.len()) };
            at += p.len();
        }
    });
    // SAFETY: `object` came from `PyBytes_FromStringAndSize`.
    Ok(unsafe { object.cast_into_unchecked::<PyBytes>() })
}

/// The buffer of a `bytes` object under construction, filled without the GIL.
struct Buffer(*mut u8);

impl Buffer {
    /// The address `offset` bytes into the buffer.
    ///
    /// # Safety
    /// `offset` must not exceed the buffer's length.
    unsafe fn at(&self, offset: usize) -> *mut u8 {
        // SAFETY: the caller keeps `offset` within the buffer.
        unsafe { self.0.add(offset) }
    }
}
// SAFETY: the buffer belongs to an object no other thread can reach until
// the filling thread returns it; it is written by one thread at a time.
unsafe impl Send for Buffer {}
unsafe impl Sync for Buffer {}

fn closed_file() -> Error {
    Error::new(ErrorKind::InvalidInput, "I/O operation on a closed file")
}

/// Chunks read ahead of the reader (bounded memory: this many chunks of the
/// backend's size, 1 MiB for the built-in backends, plus the one in use).
const READ_AHEAD: usize = 4;
/// Chunks queued for the backend ahead of a writer.
const WRITE_AHEAD: usize = 1;

/// The state of a streamed read. A task on the runtime pulls chunks from
/// the backend a little ahead of the reader, so that reading the next chunk
/// overlaps with copying the current one into Python.
pub struct ReadState {
    session: Session,
    key: Key,
    pos: u64,
    ahead: Option<(mpsc::Receiver<tierfs_core::Result<Bytes>>, JoinHandle<()>)>,
    pending: Bytes,
    eof: bool,
    closed: bool,
}

fn read_ahead(mut stream: ByteStream) -> (mpsc::Receiver<tierfs_core::Result<Bytes>>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    let task = tokio::spawn(async move {
        while let Some(chunk) = stream.next().await {
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
    });
    (rx, task)
}

impl ReadState {
    /// Opens `key` for reading (fails at once if it is missing or refused).
    pub async fn open(session: Session, key: Key) -> tierfs_core::Result<ReadState> {
        let stream = session.read(&key, None).await?;
        Ok(ReadState {
            session,
            key,
            pos: 0,
            ahead: Some(read_ahead(stream)),
            pending: Bytes::new(),
            eof: false,
            closed: false,
        })
    }

    /// Makes `pending` non-empty; `false` at the end of the value.
    async fn fill(&mut self) -> tierfs_core::Result<bool> {
        if self.closed {
            return Err(closed_file());
        }
        while self.pending.is_empty() {
            if self.eof {
                return Ok(false);
            }
            if self.ahead.is_none() {
                let stream = self.session.read(&self.key, Some(self.pos..u64::MAX)).await?;
                self.ahead = Some(read_ahead(stream));
            }
            let Some((rx, _)) = self.ahead.as_mut() else { return Ok(false) };
            match rx.recv().await {
                Some(chunk) => self.pending = chunk?,
                None => self.eof = true,
            }
        }
        Ok(true)
    }

    /// Up to `limit` bytes (all that is left for `None`), as pieces.
    pub async fn read(&mut self, limit: Option<usize>) -> tierfs_core::Result<Vec<Bytes>> {
        let mut pieces = Vec::new();
        let mut left = limit.unwrap_or(usize::MAX);
        while left > 0 && self.fill().await? {
            let n = left.min(self.pending.len());
            pieces.push(self.pending.split_to(n));
            self.pos += n as u64;
            left -= n;
        }
        Ok(pieces)
    }

    /// Moves to `offset` from the start (0), the current position (1) or the end (2).
    pub async fn seek(&mut self, offset: i64, whence: i32) -> tierfs_core::Result<u64> {
        if self.closed {
            return Err(closed_file());
        }
        let base = match whence {
            0 => 0,
            1 => self.pos as i128,
            2 => self.session.stat(&self.key).await?.size as i128,
            w => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("whence {w} is not 0 (start), 1 (current) or 2 (end)"),
                ))
            }
        };
        let target = base + offset as i128;
        if target < 0 || target > u64::MAX as i128 {
            return Err(Error::new(ErrorKind::InvalidInput, format!("cannot seek to {target}")));
        }
        let target = target as u64;
        if target != self.pos {
            // Reopen lazily at the new position.
            self.pos = target;
            self.stop();
            self.pending = Bytes::new();
            self.eof = false;
        }
        Ok(target)
    }

    fn stop(&mut self) {
        if let Some((_, task)) = self.ahead.take() {
            task.abort();
        }
    }

    fn close(&mut self) {
        self.closed = true;
        self.stop();
        self.pending = Bytes::new();
    }
}

impl Drop for ReadState {
    fn drop(&mut self) {
        self.stop();
    }
}

type WriterTask = JoinHandle<tierfs_core::Result<Box<dyn ValueWriter>>>;

/// The state of a streamed write. A task on the runtime owns the backend's
/// writer and takes chunks from a short queue, so that writing one chunk
/// overlaps with Python producing the next.
pub struct WriteState {
    queue: Option<mpsc::Sender<Bytes>>,
    task: Option<WriterTask>,
    buf: BytesMut,
    written: u64,
}

impl WriteState {
    /// Starts a streamed write of `key`.
    pub async fn open(session: Session, key: Key, options: PutOptions) -> tierfs_core::Result<WriteState> {
        let mut writer = session.write(&key, options).await?;
        let (tx, mut rx) = mpsc::channel::<Bytes>(WRITE_AHEAD);
        let task = tokio::spawn(async move {
            while let Some(chunk) = rx.recv().await {
                if let Err(e) = writer.write(chunk).await {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            }
            Ok(writer)
        });
        Ok(WriteState { queue: Some(tx), task: Some(task), buf: BytesMut::new(), written: 0 })
    }

    /// Ends the queue and takes the writer back (or the error that stopped it).
    async fn drain(&mut self) -> tierfs_core::Result<Box<dyn ValueWriter>> {
        self.queue = None;
        match self.task.take() {
            Some(task) => crate::runtime::joined(task.await)?,
            None => Err(closed_file()),
        }
    }

    async fn send(&mut self, chunk: Bytes) -> tierfs_core::Result<()> {
        let Some(queue) = self.queue.as_ref() else { return Err(closed_file()) };
        if queue.send(chunk).await.is_err() {
            // The task stopped on an error: report it.
            return match self.drain().await {
                Err(e) => Err(e),
                Ok(writer) => {
                    let _ = writer.abort().await;
                    Err(Error::new(ErrorKind::Unavailable, "the streamed write stopped unexpectedly"))
                }
            };
        }
        Ok(())
    }

    /// Appends `data`, handing full chunks to the backend.
    pub async fn write(&mut self, data: Bytes) -> tierfs_core::Result<usize> {
        let n = data.len();
        if self.queue.is_none() {
            return Err(closed_file());
        }
        if self.buf.is_empty() && n >= WRITE_CHUNK {
            // Large writes go through as they are, without a copy.
            self.send(data).await?;
        } else {
            self.buf.extend_from_slice(&data);
            if self.buf.len() >= WRITE_CHUNK {
                let chunk = std::mem::take(&mut self.buf).freeze();
                self.send(chunk).await?;
            }
        }
        self.written += n as u64;
        Ok(n)
    }

    /// Publishes the value; a second close is a no-op returning `None`.
    pub async fn finish(&mut self) -> tierfs_core::Result<Option<ObjectMeta>> {
        if self.queue.is_none() && self.task.is_none() {
            return Ok(None);
        }
        if !self.buf.is_empty() {
            let chunk = std::mem::take(&mut self.buf).freeze();
            self.send(chunk).await?;
        }
        let writer = self.drain().await?;
        writer.finish().await.map(Some)
    }

    /// Discards what was written; the previous value stays.
    pub async fn abort(&mut self) -> tierfs_core::Result<()> {
        self.buf = BytesMut::new();
        if self.task.is_none() {
            return Ok(());
        }
        match self.drain().await {
            Ok(writer) => writer.abort().await,
            // The write had already failed and was discarded.
            Err(_) => Ok(()),
        }
    }
}

impl Drop for WriteState {
    fn drop(&mut self) {
        // Never closed: the task ends, dropping the writer, which discards.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The native side of `tierfs.ReadFile` (use `Store.open(key, "rb")`).
#[pyclass(module = "tierfs._native", name = "Reader", frozen)]
pub struct Reader {
    state: Arc<Mutex<ReadState>>,
}

impl Reader {
    /// Wraps an open read.
    pub fn new(state: ReadState) -> Self {
        Reader { state: Arc::new(Mutex::new(state)) }
    }
}

#[pymethods]
impl Reader {
    /// Up to `size` bytes (all that is left when `size` is negative or None).
    #[pyo3(signature = (size=-1))]
    fn read<'py>(&self, py: Python<'py>, size: Option<i64>) -> PyResult<Bound<'py, PyBytes>> {
        let limit = size.filter(|s| *s >= 0).map(|s| s as usize);
        let state = self.state.clone();
        let pieces = block_on(py, async move { state.lock().await.read(limit).await })?.py_err()?;
        to_pybytes(py, &pieces)
    }

    /// Reads into a `bytearray`; returns the count (0 at the end).
    fn readinto(&self, py: Python<'_>, buffer: &Bound<'_, PyByteArray>) -> PyResult<usize> {
        let mut filled = 0;
        loop {
            let want = buffer.len().saturating_sub(filled);
            if want == 0 {
                return Ok(filled);
            }
            let state = self.state.clone();
            let limit = want.min(READ_STEP);
            let pieces = block_on(py, async move { state.lock().await.read(Some(limit)).await })?.py_err()?;
            if pieces.is_empty() {
                return Ok(filled);
            }
            // SAFETY: the GIL is held from here to the end of the copy and no
            // Python code runs in between, so nothing can resize or free the
            // bytearray while the slice is alive.
            let target = unsafe { buffer.as_bytes_mut() };
            for p in pieces {
                let end = (filled + p.len()).min(target.len());
                target[filled..end].copy_from_slice(&p[..end - filled]);
                filled = end;
            }
        }
    }

    /// Moves the position; returns the new one.
    #[pyo3(signature = (offset, whence=0))]
    fn seek(&self, py: Python<'_>, offset: i64, whence: i32) -> PyResult<u64> {
        let state = self.state.clone();
        block_on(py, async move { state.lock().await.seek(offset, whence).await })?.py_err()
    }

    /// The position.
    fn tell(&self, py: Python<'_>) -> PyResult<u64> {
        let state = self.state.clone();
        block_on(py, async move { state.lock().await.pos })
    }

    /// Stops reading.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let state = self.state.clone();
        block_on(py, async move { state.lock().await.close() })
    }
}

/// The native side of `tierfs.WriteFile` (use `Store.open(key, "wb")`).
#[pyclass(module = "tierfs._native", name = "Writer", frozen)]
pub struct Writer {
    state: Arc<Mutex<WriteState>>,
}

impl Writer {
    /// Wraps an open write.
    pub fn new(state: WriteState) -> Self {
        Writer { state: Arc::new(Mutex::new(state)) }
    }
}

#[pymethods]
impl Writer {
    /// Appends `data` (bytes-like or str); returns the count.
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<usize> {
        let data = value(data)?;
        let state = self.state.clone();
        block_on(py, async move { state.lock().await.write(data).await })?.py_err()
    }

    /// Publishes the value; returns its Stat (None if already closed).
    fn close(&self, py: Python<'_>) -> PyResult<Option<Stat>> {
        let state = self.state.clone();
        let meta = block_on(py, async move { state.lock().await.finish().await })?.py_err()?;
        Ok(meta.map(Stat::new))
    }

    /// Discards what was written; the previous value stays.
    fn abort(&self, py: Python<'_>) -> PyResult<()> {
        let state = self.state.clone();
        block_on(py, async move { state.lock().await.abort().await })?.py_err()
    }

    /// Bytes written so far.
    fn tell(&self, py: Python<'_>) -> PyResult<u64> {
        let state = self.state.clone();
        block_on(py, async move { state.lock().await.written })
    }
}

/// A value being read, for `async` code (from `AsyncStore.open(key, "rb")`).
///
/// Example:
///     >>> async with await store.open("big.bin", "rb") as f:
///     ...     while chunk := await f.read(1 << 20):
///     ...         consume(chunk)
#[pyclass(module = "tierfs", name = "AsyncReadFile", frozen)]
pub struct AsyncReader {
    state: Arc<Mutex<ReadState>>,
    name: String,
}

impl AsyncReader {
    /// Wraps an open read.
    pub fn new(state: ReadState, name: String) -> Self {
        AsyncReader { state: Arc::new(Mutex::new(state)), name }
    }
}

#[pymethods]
impl AsyncReader {
    /// The key.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Up to `size` bytes (all that is left when negative).
    #[pyo3(signature = (size=-1))]
    async fn read(&self, size: i64) -> PyResult<Py<PyBytes>> {
        let limit = (size >= 0).then_some(size as usize);
        let state = self.state.clone();
        let pieces = run(async move { state.lock().await.read(limit).await }).await?.py_err()?;
        Python::attach(|py| Ok(to_pybytes(py, &pieces)?.unbind()))
    }

    /// Moves the position; returns the new one.
    #[pyo3(signature = (offset, whence=0))]
    async fn seek(&self, offset: i64, whence: i32) -> PyResult<u64> {
        let state = self.state.clone();
        run(async move { state.lock().await.seek(offset, whence).await }).await?.py_err()
    }

    /// Stops reading.
    async fn close(&self) -> PyResult<()> {
        let state = self.state.clone();
        run(async move { state.lock().await.close() }).await
    }

    fn __aenter__<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ready(slf.into_any())
    }

    #[pyo3(signature = (*_args))]
    fn __aexit__<'py>(slf: Bound<'py, Self>, _args: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        slf.call_method0("close")
    }
}

/// A value being written, for `async` code (from `AsyncStore.open(key, "wb")`);
/// published by `close()`, discarded by `abort()` or an exception in `async with`.
///
/// Example:
///     >>> async with await store.open("big.bin", "wb") as f:
///     ...     await f.write(b"part 1")
///     ...     await f.write(b"part 2")
#[pyclass(module = "tierfs", name = "AsyncWriteFile", frozen)]
pub struct AsyncWriter {
    state: Arc<Mutex<WriteState>>,
    name: String,
}

impl AsyncWriter {
    /// Wraps an open write.
    pub fn new(state: WriteState, name: String) -> Self {
        AsyncWriter { state: Arc::new(Mutex::new(state)), name }
    }
}

#[pymethods]
impl AsyncWriter {
    /// The key.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Appends `data`; returns the count.
    async fn write(&self, data: Py<PyAny>) -> PyResult<usize> {
        let data = Python::attach(|py| value(data.bind(py)))?;
        let state = self.state.clone();
        run(async move { state.lock().await.write(data).await }).await?.py_err()
    }

    /// Publishes the value; returns its Stat (None if already closed).
    async fn close(&self) -> PyResult<Option<Stat>> {
        let state = self.state.clone();
        let meta = run(async move { state.lock().await.finish().await }).await?.py_err()?;
        Ok(meta.map(Stat::new))
    }

    /// Discards what was written; the previous value stays.
    async fn abort(&self) -> PyResult<()> {
        let state = self.state.clone();
        run(async move { state.lock().await.abort().await }).await?.py_err()
    }

    fn __aenter__<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ready(slf.into_any())
    }

    #[pyo3(signature = (exc_type=None, _exc=None, _tb=None))]
    fn __aexit__<'py>(
        slf: Bound<'py, Self>,
        exc_type: Option<Bound<'py, PyAny>>,
        _exc: Option<Bound<'py, PyAny>>,
        _tb: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if exc_type.is_some_and(|t| !t.is_none()) {
            slf.call_method0("abort")
        } else {
            slf.call_method0("close")
        }
    }
}

/// An awaitable that completes at once with `value`.
#[pyclass(module = "tierfs._native", name = "Ready", frozen)]
pub struct Ready {
    value: Py<PyAny>,
}

#[pymethods]
impl Ready {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<()> {
        Err(pyo3::exceptions::PyStopIteration::new_err((self.value.clone_ref(py),)))
    }

    fn send(&self, py: Python<'_>, _value: Py<PyAny>) -> PyResult<()> {
        self.__next__(py)
    }

    #[pyo3(signature = (*args))]
    fn throw(&self, args: Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        match args.get_item(0) {
            Ok(exc) => Err(PyErr::from_value(exc)),
            Err(e) => Err(e),
        }
    }

    fn close(&self) {}
}

/// `value` wrapped in an awaitable that needs no event loop turn.
pub fn ready(value: Bound<'_, PyAny>) -> PyResult<Bound<'_, PyAny>> {
    let py = value.py();
    Ok(Bound::new(py, Ready { value: value.unbind() })?.into_any())
}

static READ_FILE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static WRITE_FILE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `tierfs.ReadFile(reader, key)`: the `io.RawIOBase` wrapper.
pub fn read_file<'py>(py: Python<'py>, reader: Reader, key: &str) -> PyResult<Bound<'py, PyAny>> {
    READ_FILE.import(py, "tierfs._io", "ReadFile")?.call1((Bound::new(py, reader)?, key))
}

/// `tierfs.WriteFile(writer, key)`: the `io.RawIOBase` wrapper.
pub fn write_file<'py>(py: Python<'py>, writer: Writer, key: &str) -> PyResult<Bound<'py, PyAny>> {
    WRITE_FILE.import(py, "tierfs._io", "WriteFile")?.call1((Bound::new(py, writer)?, key))
}

/// Parses a mode: `true` for reading ("rb", "r"), `false` for writing ("wb", "w").
pub fn is_read_mode(mode: &str) -> PyResult<bool> {
    match mode {
        "rb" | "r" | "br" => Ok(true),
        "wb" | "w" | "bw" => Ok(false),
        other => Err(to_py(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "mode {other:?} is not supported; use \"rb\" (streamed read) or \"wb\" (streamed write, \
                 published on close); wrap in io.TextIOWrapper for text"
            ),
        ))),
    }
}
