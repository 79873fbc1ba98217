//! The generator's runtime: one glommio executor per thread, clients dealt round-robin to them,
//! and the process-wide knobs a load generator needs (open-file limit, start barrier).

use anyhow::{anyhow, bail, Context, Result};
use glommio::{LocalExecutorBuilder, Placement};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Small on purpose: the memlock limit here is 8 MiB and glommio locks this much per executor;
/// the generator does socket I/O only, which does not use the registered buffers.
const IO_MEMORY: usize = 1 << 20;

/// Runs `per_thread(i)` on `threads` executors and returns their results in thread order.
pub fn run_on_threads<T, F, Fut>(threads: usize, per_thread: F) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Result<T>> + 'static,
{
    let mut handles = Vec::new();
    for i in 0..threads.max(1) {
        let f = per_thread.clone();
        let h = LocalExecutorBuilder::new(Placement::Unbound)
            .name(&format!("loadgen-{i}"))
            .io_memory(IO_MEMORY)
            .spawn(move || async move { f(i).await })
            .map_err(|e| anyhow!("cannot start executor {i}: {e}"))?;
        handles.push(h);
    }
    let mut out = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        let r = h
            .join()
            .map_err(|e| anyhow!("executor {i} failed: {e}"))?
            .with_context(|| format!("generator thread {i}"))?;
        out.push(r);
    }
    Ok(out)
}

/// Raises the soft open-file limit to the hard one and returns the new soft limit: each client
/// is one descriptor, and the default soft limit (1,024) would stop a run at a thousand.
pub fn raise_nofile() -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 1024;
        }
        if r.rlim_cur < r.rlim_max {
            let want = libc::rlimit {
                rlim_cur: r.rlim_max,
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                r.rlim_cur = r.rlim_max;
            }
        }
        r.rlim_cur
    }
}

/// A start line shared by every executor: tasks report ready, then wait (without blocking the
/// executor) until everybody is, so publishing starts only when all subscribers listen.
#[derive(Default)]
pub struct StartLine {
    ready: AtomicUsize,
    go: AtomicBool,
    abort: AtomicBool,
}

impl StartLine {
    pub fn arrive(&self) {
        self.ready.fetch_add(1, Ordering::AcqRel);
    }
    pub fn ready(&self) -> usize {
        self.ready.load(Ordering::Acquire)
    }
    pub fn open(&self) {
        self.go.store(true, Ordering::Release);
    }
    pub fn abort(&self) {
        self.abort.store(true, Ordering::Release);
        self.go.store(true, Ordering::Release);
    }
    pub fn aborted(&self) -> bool {
        self.abort.load(Ordering::Acquire)
    }
    /// Waits for `open` (or `abort`); returns false when aborted.
    pub async fn wait(&self) -> bool {
        while !self.go.load(Ordering::Acquire) {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        !self.aborted()
    }
}

/// `fut` under a deadline; running out of time is an error saying so ("timed out ...").
pub async fn within<T>(limit: Duration, fut: impl Future<Output = Result<T>>) -> Result<T> {
    futures::pin_mut!(fut);
    let timer = glommio::timer::sleep(limit);
    futures::pin_mut!(timer);
    match futures::future::select(fut, timer).await {
        futures::future::Either::Left((r, _)) => r,
        futures::future::Either::Right(_) => bail!("timed out after {limit:?}"),
    }
}
