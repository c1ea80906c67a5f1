//! What the runtime source hands the metrics tick: writable-layer usage by container id and the
//! image filesystem's size, refreshed in the background and read by the tick without waiting.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;

/// The filesystem that holds the snapshotter's directory, where writable layers live:
/// `statvfs` of the overlayfs snapshotter's exported `root`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImageFs {
    pub capacity_bytes: u64,
    pub available_bytes: u64,
}

/// One refresh's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerFs {
    /// Container id → bytes in its writable layer (`Snapshots.Usage` of its active snapshot).
    pub usage_bytes: HashMap<String, u64>,
    /// `None` until the snapshotter's root was found and measured.
    pub image_fs: Option<ImageFs>,
}

impl ContainerFs {
    /// The writable-layer usage of container `id`, and the image filesystem when measured.
    pub fn of(&self, id: &str) -> Option<(u64, Option<ImageFs>)> {
        Some((*self.usage_bytes.get(id)?, self.image_fs))
    }
}

/// The receiving side the metrics collector holds.
pub type FsView = watch::Receiver<Arc<ContainerFs>>;

/// A new, empty view and its sender.
pub fn fs_channel() -> (watch::Sender<Arc<ContainerFs>>, FsView) {
    watch::channel(Arc::new(ContainerFs::default()))
}
