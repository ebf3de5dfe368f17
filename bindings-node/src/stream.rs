//! Streamed reads and writes, driven by the Node streams of `index.js`.
//!
//! Reading: a task pulls the core [`ByteStream`] into a channel of
//! [`READ_AHEAD`] chunks, so the next chunk is usually ready when the
//! `Readable` asks (`tryNext` takes it without a thread hop); the channel's
//! bound is the backpressure, and memory stays at a few chunks whatever the
//! value's size. Chunks are copied into buffers Node allocates, so the
//! store's buffers are reused at once and the garbage collector sees the
//! memory it has to reclaim.
//!
//! Writing: `push` copies a chunk into a buffer on the JavaScript thread
//! (no thread hop) and says when [`WRITE_CHUNK`] bytes are waiting; `flush`
//! takes them and hands them to the core [`ValueWriter`] off the thread.
//! The `Writable` goes on filling the next buffer while one flush runs and
//! waits before starting a second, so at most two chunks are pending.
//! `finish` publishes; `abort` (or dropping the writer unfinished) discards.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use napi::bindgen_prelude::{BufferSlice, Either3, Null, PromiseRaw, Undefined};
use napi::Env;
use napi_derive::napi;
use parking_lot::Mutex;
use tierfs_core::{ByteStream, Error, ErrorKind, ObjectMeta, Result, ValueWriter};
use tokio::sync::{mpsc, oneshot};

use crate::convert::{stat, NativeStat};
use crate::task::{plain, promise};

/// Chunks read ahead of the consumer.
pub const READ_AHEAD: usize = 4;

/// Bytes gathered before they go to the core writer.
pub const WRITE_CHUNK: usize = 1 << 20;

type Chunks = mpsc::Receiver<Result<Bytes>>;

/// A value being read, chunk by chunk.
#[napi]
pub struct NativeReader {
    chunks: Arc<tokio::sync::Mutex<Option<Chunks>>>,
}

impl NativeReader {
    /// Starts pulling `stream` on the runtime (call from inside it).
    pub fn spawn(mut stream: ByteStream) -> Self {
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        tokio::spawn(async move {
            while let Some(chunk) = stream.next().await {
                let failed = chunk.is_err();
                // A closed channel means the reader is gone: stop reading.
                if tx.send(chunk).await.is_err() || failed {
                    break;
                }
            }
        });
        NativeReader { chunks: Arc::new(tokio::sync::Mutex::new(Some(rx))) }
    }
}

#[napi]
impl NativeReader {
    /// The next chunk, or `null` at the end of the value.
    #[napi]
    pub fn next<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, Option<BufferSlice<'env>>>> {
        let chunks = self.chunks.clone();
        let fut = async move {
            let mut guard = chunks.lock().await;
            let Some(rx) = guard.as_mut() else { return Ok(None) };
            loop {
                match rx.recv().await {
                    Some(Ok(chunk)) if chunk.is_empty() => continue,
                    Some(Ok(chunk)) => return Ok(Some(chunk)),
                    Some(Err(e)) => {
                        *guard = None;
                        return Err(e);
                    }
                    None => {
                        *guard = None;
                        return Ok(None);
                    }
                }
            }
        };
        promise(env, fut, |env, chunk| match chunk {
            Some(chunk) => plain(env, BufferSlice::copy_from(env, &chunk)?),
            None => plain(env, Null),
        })
    }

    /// The next chunk if one is already read (no thread hop): a `Buffer`,
    /// `null` at the end, or `undefined` when the caller should wait with `next`.
    #[napi]
    pub fn try_next<'env>(
        &self,
        env: &'env Env,
    ) -> napi::Result<Either3<BufferSlice<'env>, Null, Undefined>> {
        let Ok(mut guard) = self.chunks.try_lock() else { return Ok(Either3::C(())) };
        let Some(rx) = guard.as_mut() else { return Ok(Either3::B(Null)) };
        loop {
            match rx.try_recv() {
                Ok(Ok(chunk)) if chunk.is_empty() => continue,
                Ok(Ok(chunk)) => return Ok(Either3::A(BufferSlice::copy_from(env, &chunk)?)),
                Ok(Err(e)) => {
                    *guard = None;
                    return Err(crate::error::to_js(env, &e));
                }
                Err(mpsc::error::TryRecvError::Empty) => return Ok(Either3::C(())),
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    *guard = None;
                    return Ok(Either3::B(Null));
                }
            }
        }
    }

    /// Stops reading; later `next` calls return `null`.
    #[napi]
    pub fn close(&self) {
        if let Ok(mut guard) = self.chunks.try_lock() {
            *guard = None;
        } else {
            // A `next` is waiting; the reader ends when it and this handle go.
            let chunks = self.chunks.clone();
            tokio_spawn(async move {
                *chunks.lock().await = None;
            });
        }
    }
}

fn tokio_spawn(fut: impl std::future::Future<Output = ()> + Send + 'static) {
    napi::bindgen_prelude::spawn(fut);
}

/// What the writer task does, in the order the calls were made.
enum Command {
    Write(Bytes, oneshot::Sender<Result<()>>),
    Finish(Bytes, oneshot::Sender<Result<ObjectMeta>>),
    Abort(oneshot::Sender<Result<()>>),
}

/// A value being written, chunk by chunk.
#[napi]
pub struct NativeWriter {
    /// Filled by `push` on the JavaScript thread, taken by `flush`.
    buffer: Mutex<BytesMut>,
    /// To the task that owns the core writer; commands are sent on the
    /// JavaScript thread, so they apply in call order.
    commands: mpsc::UnboundedSender<Command>,
}

impl NativeWriter {
    /// Wraps a core writer in a task of its own (call from inside the runtime).
    /// Dropping the `NativeWriter` unfinished ends the task and discards the value.
    pub fn new(writer: Box<dyn ValueWriter>) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut writer = Some(writer);
            // The error that ended the write, given again to every later
            // command, so whichever call JavaScript looks at names the cause.
            let mut failed: Option<Error> = None;
            while let Some(command) = rx.recv().await {
                match command {
                    Command::Write(chunk, reply) => {
                        let _ = reply.send(write_chunk(&mut writer, &mut failed, chunk).await);
                    }
                    Command::Finish(rest, reply) => {
                        let done = match write_chunk(&mut writer, &mut failed, rest).await {
                            Ok(()) => match writer.take() {
                                Some(w) => w.finish().await,
                                None => Err(failed.clone().unwrap_or_else(finished)),
                            },
                            Err(e) => Err(e),
                        };
                        let _ = reply.send(done);
                    }
                    Command::Abort(reply) => {
                        let done = match writer.take() {
                            Some(w) => w.abort().await,
                            None => Ok(()),
                        };
                        let _ = reply.send(done);
                    }
                }
            }
        });
        NativeWriter { buffer: Mutex::new(BytesMut::new()), commands: tx }
    }

    /// Sends `command` now and returns what will wait for its answer.
    fn send<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T>>) -> Command,
    ) -> impl std::future::Future<Output = Result<T>> + Send + 'static
    where
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let sent = self.commands.send(command(reply)).is_ok();
        async move {
            // The task only ends early if it panicked.
            let stopped = || {
                Error::new(ErrorKind::Unavailable, "the write stream's task stopped; this is a bug in TierFS")
            };
            if !sent {
                return Err(stopped());
            }
            answer.await.unwrap_or_else(|_| Err(stopped()))
        }
    }
}

fn finished() -> Error {
    Error::new(ErrorKind::InvalidInput, "the write stream has already finished or been aborted")
}

/// Writes `chunk`; on failure the value cannot be completed, so what was
/// written is discarded, the error is kept in `failed`, and later calls
/// fail with it.
async fn write_chunk(
    writer: &mut Option<Box<dyn ValueWriter>>,
    failed: &mut Option<Error>,
    chunk: Bytes,
) -> Result<()> {
    let Some(w) = writer.as_mut() else { return Err(failed.clone().unwrap_or_else(finished)) };
    if chunk.is_empty() {
        return Ok(());
    }
    if let Err(e) = w.write(chunk).await {
        if let Some(w) = writer.take() {
            let _ = w.abort().await;
        }
        *failed = Some(e.clone());
        return Err(e);
    }
    Ok(())
}

#[napi]
impl NativeWriter {
    /// Copies `chunk` into the buffer; `true` when `flush` should be called.
    #[napi]
    pub fn push(&self, chunk: &[u8]) -> bool {
        let mut buffer = self.buffer.lock();
        if buffer.is_empty() && buffer.capacity() < WRITE_CHUNK {
            buffer.reserve(WRITE_CHUNK.max(chunk.len()));
        }
        buffer.extend_from_slice(chunk);
        buffer.len() >= WRITE_CHUNK
    }

    /// Hands the buffered bytes to the store. The bytes are taken now, so
    /// `push` may go on while they are written; flushes (and `finish`) apply
    /// in call order.
    #[napi]
    pub fn flush<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let chunk = self.buffer.lock().split().freeze();
        let fut = self.send(|reply| Command::Write(chunk, reply));
        promise(env, fut, plain)
    }

    /// Writes what is buffered, after the flushes before it, and publishes the value.
    #[napi]
    pub fn finish<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, NativeStat>> {
        let rest = self.buffer.lock().split().freeze();
        let fut = self.send(|reply| Command::Finish(rest, reply));
        promise(env, fut, stat)
    }

    /// Discards everything written; the previous value stays.
    #[napi]
    pub fn abort<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        self.buffer.lock().clear();
        let fut = self.send(Command::Abort);
        promise(env, fut, plain)
    }
}
