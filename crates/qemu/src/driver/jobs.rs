//! The long jobs: save and managed save, restore, save images, block jobs,
//! and what `domjobinfo` reports about them.

use std::path::Path;
use std::sync::Arc;

use qmp::commands::QueryMigrate;

use super::Driver;
use crate::jobs::blockjob::{self, AbortOptions, BlockJobInfo, BlockJobSpec, BlockJobState};
use crate::jobs::dump::{self, DumpOptions};
use crate::jobs::image::xml;
use crate::jobs::save::{self, SaveOptions};
use crate::jobs::stats::{JobStats, RamStats, elapsed_ms};
use crate::jobs::{self, AfterRestore};
use crate::object::{AsyncJobInfo, Domain, JobOutcome};
use crate::state::{JobOperation, JobType};
use crate::store::{files, status};
use crate::{Error, Result};

impl Driver {
    /// Whether the domain has a managed-save image (a stat, no job).
    pub fn has_managed_save(&self, dom: &Domain) -> bool {
        self.s.layout.managed_save(dom.name()).exists()
    }

    /// `virsh managedsave`: save to the daemon's image; `start` resumes.
    pub async fn managed_save(&self, dom: &Arc<Domain>) -> Result<()> {
        if !dom.is_persistent() {
            return Err(Error::OperationInvalid(
                "cannot do managed save for transient domain".into(),
            ));
        }
        let path = self.s.layout.managed_save(dom.name());
        save::save(&self.s, dom, &path, &SaveOptions::default()).await
    }

    /// `virsh managedsave-remove`.
    pub async fn managed_save_remove(&self, dom: &Arc<Domain>) -> Result<()> {
        let s = &self.s;
        let _job = jobs::begin(
            dom,
            joblock::NormalJob::Modify,
            "managedsave-remove",
            s.cfg.job_wait,
        )
        .await?;
        let path = s.layout.managed_save(dom.name());
        files::remove(&path).map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))
    }

    /// `virsh restore FILE [--running|--paused] [--xml DXML]`: `after`
    /// None starts the guest as it was when saved; `dxml` replaces the
    /// image's XML if it describes the same guest.
    pub async fn restore(
        &self,
        path: &Path,
        after: Option<AfterRestore>,
        dxml: Option<&str>,
    ) -> Result<Arc<Domain>> {
        jobs::restore::restore(&self.s, path, after, dxml).await
    }

    /// `virsh save-image-dumpxml FILE`: the XML a complete image carries,
    /// without secrets.
    pub async fn save_image_xml(&self, path: &Path) -> Result<String> {
        self.save_image_xml_with(path, false).await
    }

    /// `virsh save-image-dumpxml [--security-info] FILE`: with `secure`,
    /// the graphics passwords too.
    pub async fn save_image_xml_with(&self, path: &Path, secure: bool) -> Result<String> {
        xml::get_xml(path, secure).await
    }

    /// `virsh save-image-define FILE XML [--running|--paused]`: replaces
    /// the image's XML (same guest only) and, with `after`, the state a
    /// restore starts it in.
    pub async fn save_image_define(
        &self,
        path: &Path,
        xml: &str,
        after: Option<AfterRestore>,
    ) -> Result<()> {
        xml::define_xml(path, xml, after).await
    }

    /// Starts a block job (`blockcopy`, `blockpull`, `blockcommit`);
    /// `bandwidth` in bytes/s, 0 = unlimited.
    pub async fn block_job_start(
        &self,
        dom: &Arc<Domain>,
        disk: &str,
        spec: BlockJobSpec,
        bandwidth: u64,
    ) -> Result<()> {
        blockjob::start(&self.s, dom, disk, spec, bandwidth).await
    }

    /// `blockjob --abort [--pivot] [--async]`.
    pub async fn block_job_abort(
        &self,
        dom: &Arc<Domain>,
        disk: &str,
        opts: AbortOptions,
    ) -> Result<()> {
        blockjob::abort(&self.s, dom, disk, opts).await
    }

    /// `blockjob --bandwidth` (bytes/s).
    pub async fn block_job_set_speed(
        &self,
        dom: &Arc<Domain>,
        disk: &str,
        bytes: u64,
    ) -> Result<()> {
        blockjob::set_speed(&self.s, dom, disk, bytes).await
    }

    /// `blockjob --info`: `None` when the disk has no job.
    pub async fn block_job_info(
        &self,
        dom: &Arc<Domain>,
        disk: &str,
    ) -> Result<Option<BlockJobInfo>> {
        blockjob::info(&self.s, dom, disk).await
    }

    /// The running block job as the driver tracks it.
    pub fn block_job(&self, dom: &Domain) -> Option<BlockJobState> {
        dom.lock().block_job().cloned()
    }

    /// `domjobinfo`: the running async job with QEMU's migration progress.
    /// Reads QEMU without a job (query-migrate is read-only), so it never
    /// waits behind the job it reports on.
    pub async fn job_info(&self, dom: &Domain) -> Result<JobStats> {
        let Some(job) = dom.async_job() else {
            return Ok(JobStats::none());
        };
        let mut st = JobStats::none();
        st.job_type = JobType::Unbounded;
        st.operation = Some(job.operation);
        st.elapsed_ms = elapsed_ms(job.started);
        if job.operation == JobOperation::Dump
            && let Some(ram) = dump::progress_stats(&self.s, dom).await
        {
            st.ram = ram;
            return Ok(st);
        }
        if let Ok(m) = dom.qmp(&QueryMigrate, self.s.cfg.monitor_timeout).await {
            st.ram = RamStats::from_query_migrate(&m).unwrap_or_default();
            st.status = m.status;
        }
        if job.operation == JobOperation::MigrationOut {
            st.disk = jobs::migration::disk_progress(&self.s, dom).await;
        }
        Ok(st)
    }

    /// `domjobinfo --completed [--keep-completed]`: statistics of the last
    /// async job that ended, or job type None. As in libvirt, reading them
    /// discards them unless `keep`; the status file then forgets them too.
    pub fn completed_job_stats(&self, dom: &Domain, keep: bool) -> JobStats {
        let Some(done) = dom.read_completed_job(keep) else {
            return JobStats::none();
        };
        if !keep {
            status::persist_in_background(&self.s, dom);
        }
        done.stats()
    }

    /// The running async job as recorded by the driver.
    pub fn async_job(&self, dom: &Domain) -> Option<AsyncJobInfo> {
        dom.async_job()
    }

    /// Outcome of the last async job (also one that ran across a restart).
    pub fn last_job(&self, dom: &Domain) -> Option<JobOutcome> {
        dom.last_job()
    }

    /// `domjobabort`: cancels the running async job.
    pub async fn abort_job(&self, dom: &Arc<Domain>) -> Result<()> {
        dump::check_abortable(dom)?;
        save::abort(&self.s, dom).await?;
        jobs::migration::aborted(&self.s, dom).await;
        Ok(())
    }

    /// `virsh save`: pause, write the state to `path`, stop QEMU.
    pub async fn save(&self, dom: &Arc<Domain>, path: &Path) -> Result<()> {
        self.save_with(dom, path, &SaveOptions::default()).await
    }

    /// `virsh dump`: the guest's state or memory into `path`; the guest
    /// then goes on, resets or stops as crashed.
    pub async fn core_dump(&self, dom: &Arc<Domain>, path: &Path, opts: DumpOptions) -> Result<()> {
        dump::dump(&self.s, dom, path, opts).await
    }

    /// `virsh save` with `--xml` / `--running` / `--paused`.
    pub async fn save_with(
        &self,
        dom: &Arc<Domain>,
        path: &Path,
        opts: &SaveOptions,
    ) -> Result<()> {
        save::save(&self.s, dom, path, opts).await
    }
}
